use proptest::prelude::*;

use super::*;

fn limits(max_frame_bytes: usize) -> FrameLimits {
    FrameLimits { max_frame_bytes, max_messages: 1000 }
}

fn read_all(reader: &mut FrameReader, bytes: &[u8], chunk: usize) -> Result<Vec<Vec<u8>>, FrameError> {
    let mut got = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        reader.feed(piece)?;
        while let Some(frame) = reader.next_frame()? {
            got.extend(frame);
        }
    }
    Ok(got)
}

#[test]
fn coalesces_and_splits_frames() {
    let mut w = FrameWriter::new(limits(64));
    for m in [&b"a"[..], b"bb", b"", b"dddd"] {
        w.push(m).unwrap();
    }
    let bytes = w.take();
    // One frame: 4 + 5 + (4+1) + (4+2) + 4 + (4+4).
    assert_eq!(bytes.len(), 4 + 5 + 5 + 6 + 4 + 8);
    assert!(!w.pending());
    let mut r = FrameReader::new(limits(64));
    assert_eq!(read_all(&mut r, &bytes, 3).unwrap(), [b"a".to_vec(), b"bb".to_vec(), vec![], b"dddd".to_vec()]);
    // Messages that do not fit one frame spill into the next.
    let big = vec![7u8; 40];
    w.push(&big).unwrap();
    w.push(&big).unwrap();
    let bytes = w.take();
    let mut r = FrameReader::new(limits(64));
    r.feed(&bytes).unwrap();
    assert_eq!(r.next_frame().unwrap().unwrap().len(), 1);
    assert_eq!(r.next_frame().unwrap().unwrap().len(), 1);
    assert_eq!(r.next_frame().unwrap(), None);
    // A single message over the limit is refused at the writer.
    assert!(matches!(w.push(&[0; 100]), Err(FrameError::Oversize { .. })));
}

#[test]
fn oversize_is_refused_before_the_body_arrives() {
    let mut r = FrameReader::new(limits(1024));
    let err = r.feed(&(1_000_000u32).to_le_bytes()).unwrap_err();
    assert_eq!(err, FrameError::Oversize { len: 1_000_000, limit: 1024 });
    assert_eq!(r.buffered(), 4, "nothing beyond the length was buffered");
}

#[test]
fn malformed_bodies_are_typed_errors() {
    let frame = |body: &[u8]| {
        let mut f = (body.len() as u32).to_le_bytes().to_vec();
        f.extend_from_slice(body);
        f
    };
    let check = |body: &[u8]| {
        let mut r = FrameReader::new(limits(1024));
        r.feed(&frame(body)).unwrap();
        r.next_frame().unwrap_err()
    };
    assert_eq!(check(&[2, 1, 0, 0, 0]), FrameError::Version(2));
    assert!(matches!(check(&[]), FrameError::Malformed { .. }));
    assert!(matches!(check(&[1, 0, 0, 0, 0]), FrameError::Malformed { .. }), "no messages");
    assert!(matches!(check(&[1, 255, 255, 255, 255]), FrameError::TooManyMessages { .. }));
    assert!(matches!(check(&[1, 2, 0, 0, 0, 0, 0, 0, 0]), FrameError::Malformed { .. }), "count beyond the body");
    assert!(matches!(check(&[1, 1, 0, 0, 0, 9, 0, 0, 0, 1]), FrameError::Malformed { .. }), "message past the end");
    assert!(matches!(check(&[1, 1, 0, 0, 0, 0, 0, 0, 0, 42]), FrameError::Malformed { .. }), "trailing bytes");
}

proptest! {
    /// Whatever the messages and however the stream is cut, the reader returns exactly what
    /// the writer was given, in order.
    #[test]
    fn round_trips_through_any_split(
        messages in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..60),
        chunk in 1..300usize,
        max in 300..2000usize,
        flush_every in 1..20usize,
    ) {
        let mut w = FrameWriter::new(limits(max));
        let mut stream = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            w.push(m).unwrap();
            if i % flush_every == 0 {
                stream.extend(w.take());
            }
        }
        stream.extend(w.take());
        let mut r = FrameReader::new(limits(max));
        prop_assert_eq!(read_all(&mut r, &stream, chunk).unwrap(), messages);
        prop_assert_eq!(r.buffered(), 0);
    }
}

#[test]
fn many_tiny_frames_in_one_read_are_linear() {
    let mut w = FrameWriter::new(limits(64));
    let mut stream = Vec::new();
    for i in 0..100_000u32 {
        w.push(&i.to_le_bytes()).unwrap();
        stream.extend(w.take());
    }
    let mut r = FrameReader::new(limits(64));
    r.feed(&stream).unwrap();
    let start = std::time::Instant::now();
    let mut n = 0;
    while let Some(f) = r.next_frame().unwrap() {
        n += f.len();
    }
    assert_eq!(n, 100_000);
    assert_eq!(r.buffered(), 0);
    // Quadratic shifting of 1.3 MB, 100,000 times, would take minutes even optimised.
    assert!(start.elapsed() < std::time::Duration::from_secs(20), "{:?}", start.elapsed());
}
