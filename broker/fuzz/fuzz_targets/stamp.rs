//! Fuzzes the bench-stamp finder (`protocol::stamp::stamps`), which an app host started for a
//! bench runs over everything its page posts: no panic on any text, never more stamps than
//! the field's name occurs, and each stamp found is written in the text right after a name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::stamp::{FIELD, stamps};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let found: Vec<u64> = stamps(text).collect();
    assert!(found.len() <= text.matches(FIELD).count());
    for s in found {
        assert!(text.contains(&s.to_string()), "{s} is not in the text");
    }
});
