//! Fuzzes the native endpoint's decoder as a hostile client drives it: an arbitrary stream,
//! cut at arbitrary points, through the frame reader; the first frame through the hello parser
//! and the rest through the envelope parser. Nothing may panic; the reader never buffers more
//! than one frame's limit plus a read; a frame it yields re-frames to the same bytes; and every
//! envelope a client's message becomes is one the shell can send back to an app as JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::envelope;
use protocol::native::{self, FrameReader, MAX_FRAME};
use protocol::wire::{HostMsg, ShellMsg};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else { return };
    let chunk = usize::from(chunk).max(1);
    let mut reader = FrameReader::new();
    let mut first = true;
    'feed: for piece in stream.chunks(chunk) {
        reader.feed(piece);
        assert!(reader.buffered() <= 4 + MAX_FRAME + chunk);
        loop {
            let text = match reader.next_frame() {
                Ok(Some(text)) => text.to_owned(),
                Ok(None) => break,
                Err(_) => break 'feed,
            };
            let mut again = Vec::new();
            native::push_frame(&text, &mut again);
            assert_eq!(&again[4..], text.as_bytes());
            if std::mem::take(&mut first) {
                if let Ok(native::Hello { proof: native::Proof::Token(token), .. }) = native::parse_hello(&text) {
                    assert!(!token.is_empty() && token.len() <= 256);
                }
                let _ = native::parse_proof(&text);
                continue;
            }
            match envelope::app_message(&text) {
                // What a client published comes back to a subscriber as JSON.
                Ok(HostMsg::Publish { topic, payload, .. }) => {
                    let back = ShellMsg::Deliver { sub: 1, seq: 1, topic, payload, timestamp_us: 0, sender: 0 };
                    let json = envelope::shell_message(&back).expect("a delivery has an envelope");
                    serde_json::from_str::<serde_json::Value>(&json).expect("the envelope is JSON");
                }
                Ok(HostMsg::Fdc3 { message }) => assert_eq!(message, text),
                Ok(_) | Err(_) => {}
            }
        }
    }
});
