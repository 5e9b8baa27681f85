//! Fuzzes the journal record decoder: whatever the bytes, no panic; whatever decodes
//! re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use storage::record::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = decode(7, data) {
        let mut again = Vec::new();
        encode(&msg.envelope, msg.topic_seq, &mut again).expect("a decoded record encodes");
        assert_eq!(again, data, "decode then encode is the identity");
    }
});
