//! Fuzzes the decoders of the profile's small tables: no input may panic them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use storage::kv::decode_json;
use storage::{Grant, SavedLayout, UpdateState};

fuzz_target!(|data: &[u8]| {
    let _ = decode_json::<Grant>("grants", "k", data);
    let _ = decode_json::<SavedLayout>("layouts", "k", data);
    let _ = decode_json::<UpdateState>("update_state", "k", data);
    let _ = decode_json::<broker::DeadLetter>("dead_letters", "k", data);
});
