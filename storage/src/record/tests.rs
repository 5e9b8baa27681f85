use proptest::prelude::*;

use super::*;

fn envelope(topic: &str, payload: Vec<u8>, app: Option<&str>, expiry: Option<u64>) -> Envelope {
    Envelope {
        id: MessageId(0x0123_4567_89ab_cdef_0011_2233_4455_6677),
        seq: 9,
        topic: Topic::parse(topic).unwrap(),
        payload: payload.into(),
        sender: Sender { client: ClientId(5), app: app.map(AppId::new) },
        timestamp: Timestamp(1_700_000_000_000_000),
        trace_id: TraceId(77),
        durable: true,
        expires_at: expiry.map(Timestamp),
        target: None,
        encoded: Default::default(),
        sampled: Default::default(),
        trace: None,
    }
}

#[test]
fn round_trips_and_rejects_damage() {
    let env = envelope("prices.xnas.aapl", b"{\"bid\":1}".to_vec(), Some("blotter"), Some(5));
    let mut buf = Vec::new();
    encode(&env, 42, false, &mut buf).unwrap();
    let back = decode(9, &buf).unwrap();
    assert_eq!(*back.envelope, env);
    assert_eq!(back.topic_seq, 42);

    for cut in 0..buf.len() {
        assert!(decode(9, &buf[..cut]).is_err(), "truncated at {cut}");
    }
    // Every single bit flip anywhere is caught.
    for bit in 0..buf.len() * 8 {
        let mut bad = buf.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(decode(9, &bad).is_err(), "bit {bit}");
    }
    // With a matching checksum, the structural checks still apply.
    let reseal = |mut body: Vec<u8>| {
        body.truncate(body.len() - 4);
        let crc = crc32fast::hash(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        body
    };
    let mut longer = buf[..buf.len() - 4].to_vec();
    longer.push(0);
    longer.extend_from_slice(&[0; 4]);
    assert_eq!(decode(9, &reseal(longer)).unwrap_err(), DecodeError::TrailingBytes { extra: 1 });
    let mut v = buf.clone();
    v[0] = 2;
    assert_eq!(decode(9, &reseal(v)).unwrap_err(), DecodeError::Version(2));
    let mut f = buf.clone();
    f[1] |= 0x80;
    assert!(matches!(decode(9, &reseal(f)).unwrap_err(), DecodeError::Flags(_)));
}

proptest! {
    #[test]
    fn any_message_round_trips(
        topic in "[a-z]{1,5}(\\.[a-z0-9]{1,5}){0,4}",
        payload in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..600),
            // Large and repetitive: compressible.
            (prop::collection::vec(any::<u8>(), 1..16), 100..400usize).prop_map(|(unit, n)| unit.repeat(n)),
        ],
        app in prop::option::of("[a-z-]{1,12}"),
        expiry in prop::option::of(any::<u64>()),
        topic_seq in any::<u64>(),
        compress in any::<bool>(),
    ) {
        let env = envelope(&topic, payload, app.as_deref(), expiry);
        let mut buf = Vec::new();
        encode(&env, topic_seq, compress, &mut buf).unwrap();
        let back = decode(9, &buf).unwrap();
        prop_assert_eq!(&*back.envelope, &env);
        prop_assert_eq!(back.topic_seq, topic_seq);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode(1, &bytes);
    }
}

#[test]
fn large_repetitive_payloads_are_compressed_and_small_ones_are_not() {
    let json: Vec<u8> = (0..60).flat_map(|i| format!("{{\"sym\":\"S{i:04}\",\"bid\":101.25}}").into_bytes()).collect();
    assert!(json.len() > COMPRESS_MIN_BYTES);
    let env = envelope("prices.x", json.clone(), None, None);
    let (mut plain, mut packed) = (Vec::new(), Vec::new());
    encode(&env, 1, false, &mut plain).unwrap();
    encode(&env, 1, true, &mut packed).unwrap();
    assert!(packed.len() < plain.len() / 2, "{} vs {}", packed.len(), plain.len());
    assert_eq!(decode(1, &packed).unwrap().envelope.payload.as_bytes(), &json[..]);
    // Incompressible or small payloads stay as they are even when asked.
    let small = envelope("t", b"short".to_vec(), None, None);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    encode(&small, 1, false, &mut a).unwrap();
    encode(&small, 1, true, &mut b).unwrap();
    assert_eq!(a, b);
    // A record claiming a huge decompressed size is refused before allocating. Layout without
    // app or expiry: 58 bytes of header, u16 + "prices.x", then the original length.
    let mut lie = packed[..packed.len() - 4].to_vec();
    lie[68..72].copy_from_slice(&u32::MAX.to_le_bytes());
    let crc = crc32fast::hash(&lie);
    lie.extend_from_slice(&crc.to_le_bytes());
    assert!(matches!(decode(1, &lie).unwrap_err(), DecodeError::TooLong { .. }));
    // A wrong (but allowed) original length fails to decompress.
    let mut off = packed[..packed.len() - 4].to_vec();
    off[68..72].copy_from_slice(&(json.len() as u32 + 1).to_le_bytes());
    let crc = crc32fast::hash(&off);
    off.extend_from_slice(&crc.to_le_bytes());
    assert!(matches!(decode(1, &off).unwrap_err(), DecodeError::BadCompression { .. }));
}
