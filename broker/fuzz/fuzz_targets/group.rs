//! Fuzzes the decoders of a shared app host's control records (`protocol::wire::GroupReply`,
//! which the shell reads from a host it does not trust, and `GroupMsg`): no panic on any record,
//! and what they accept re-encodes to an equal message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::wire::{self, GroupMsg, GroupReply, MAX_GROUP_RECORD};

fuzz_target!(|data: &[u8]| {
    let record = &data[..data.len().min(MAX_GROUP_RECORD)];
    if let Ok(reply) = wire::decode::<GroupReply>(record) {
        let mut again = Vec::new();
        wire::encode(&reply, &mut again).expect("a decoded reply encodes");
        assert_eq!(wire::decode::<GroupReply>(&again).expect("re-encoded decodes"), reply);
    }
    if let Ok(msg) = wire::decode::<GroupMsg>(record) {
        let mut again = Vec::new();
        wire::encode(&msg, &mut again).expect("a decoded message encodes");
        assert_eq!(wire::decode::<GroupMsg>(&again).expect("re-encoded decodes"), msg);
    }
});
