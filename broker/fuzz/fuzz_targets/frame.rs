//! Fuzzes the frame reader with arbitrary streams cut at arbitrary points: no panic, no
//! allocation beyond the limit, and every frame it accepts survives a write/read round trip.
//! Every message it yields also goes through the wire decoders, which must not panic, and
//! what they accept re-encodes to an equal message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::frame::{FrameLimits, FrameReader, FrameWriter};
use protocol::wire::{self, HostMsg, ShellMsg};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else { return };
    let limits = FrameLimits { max_frame_bytes: 4096, max_messages: 64 };
    let mut reader = FrameReader::new(limits);
    let mut accepted = Vec::new();
    'feed: for piece in stream.chunks(usize::from(chunk).max(1)) {
        if reader.feed(piece).is_err() {
            break;
        }
        assert!(reader.buffered() <= 4 + limits.max_frame_bytes + usize::from(chunk).max(1));
        loop {
            match reader.next_frame() {
                Ok(Some(frame)) => accepted.extend(frame),
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
    for m in &accepted {
        if let Ok(msg) = wire::decode::<HostMsg>(m) {
            let mut again = Vec::new();
            wire::encode(&msg, &mut again).expect("a decoded message encodes");
            assert_eq!(wire::decode::<HostMsg>(&again).expect("re-encoded decodes"), msg);
        }
        if let Ok(msg) = wire::decode::<ShellMsg>(m) {
            let mut again = Vec::new();
            wire::encode(&msg, &mut again).expect("a decoded message encodes");
            assert_eq!(wire::decode::<ShellMsg>(&again).expect("re-encoded decodes"), msg);
        }
    }
    let mut writer = FrameWriter::new(limits);
    for m in &accepted {
        writer.push(m).expect("an accepted message fits a frame");
    }
    let mut again = FrameReader::new(limits);
    again.feed(&writer.take()).expect("re-encoded frames are within limits");
    let mut back = Vec::new();
    while let Some(frame) = again.next_frame().expect("re-encoded frames parse") {
        back.extend(frame);
    }
    assert_eq!(back, accepted);
});
