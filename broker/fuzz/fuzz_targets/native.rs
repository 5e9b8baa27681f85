//! Fuzzes the native endpoint's decoder as a hostile client drives it: an arbitrary stream,
//! cut at arbitrary points, through the frame reader; the first frame through the hello parser
//! and the rest through the envelope parser; every frame through the fast delivery reader a
//! client uses (what the shell sends comes over the same frames), and through the reader of a
//! page's batches. Nothing may panic; the reader never buffers more
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
            // What a client reads as a delivery whose data is one JSON value, the JSON reader
            // reads the same way.
            if let Some(d) = envelope::read_delivery(&text)
                && serde_json::from_str::<serde_json::Value>(&text[d.data.clone()]).is_ok()
            {
                let v = serde_json::from_str::<serde_json::Value>(&text).expect("a delivery is JSON");
                let p = &v["payload"];
                assert_eq!(p["sub"].as_u64(), Some(u64::from(d.sub)));
                assert_eq!(p["topic"].as_str(), Some(&text[d.topic.clone()]));
                assert_eq!((p["seq"].as_u64(), p["sender"].as_u64()), (Some(d.seq), Some(d.sender)));
            }
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
            // What the app host reads of the agent's messages: which request one answers.
            if let Some(id) = envelope::dacp_answered(&text) {
                assert_eq!(envelope::dacp_request_id(&text).as_deref(), Some(id.as_ref()));
            }
            // What a page posts may be a batch of envelopes: each is one a client could send.
            if let Ok(parts) = envelope::app_batch(&text) {
                assert!(parts.len() <= envelope::MAX_APP_BATCH);
                for part in parts {
                    assert!(text.contains(part));
                    let _ = envelope::app_message(part);
                }
            }
            match envelope::app_message(&text) {
                // What a client published comes back to a subscriber as JSON.
                Ok(HostMsg::Publish { topic, payload, trace, .. }) => {
                    let back = ShellMsg::Deliver { sub: 1, seq: 1, topic, payload, timestamp_us: 0, sender: 0, trace };
                    let json = envelope::shell_message(&back).expect("a delivery has an envelope");
                    let v = serde_json::from_str::<serde_json::Value>(&json).expect("the envelope is JSON");
                    // A client's fast reader reads it as the JSON reader does (where its topic
                    // needs no escapes).
                    if let Some(d) = envelope::read_delivery(&json) {
                        assert_eq!(v["payload"]["topic"].as_str(), Some(&json[d.topic.clone()]));
                        let data = serde_json::from_str::<serde_json::Value>(&json[d.data]).expect("the data is JSON");
                        assert_eq!(data, v["payload"]["data"]);
                        // …and the trace it was published in.
                        assert_eq!(d.trace, trace);
                    }
                }
                Ok(HostMsg::Fdc3 { message }) => {
                    assert_eq!(message, text);
                    // The id the app host keeps a page's request under, if it has one.
                    let _ = envelope::dacp_request_id(&message);
                }
                Ok(_) | Err(_) => {}
            }
        }
    }
});
