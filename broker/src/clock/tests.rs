use super::*;

#[test]
fn rfc3339_in_utc() {
    for (us, text) in [
        (0, "1970-01-01T00:00:00.000000Z"),
        (951_782_400_000_001, "2000-02-29T00:00:00.000001Z"),
        (1_795_686_758_123_456, "2026-11-26T09:52:38.123456Z"),
        (4_107_542_399_999_999, "2100-02-28T23:59:59.999999Z"),
    ] {
        assert_eq!(Timestamp(us).to_rfc3339(), text);
        assert_eq!(Timestamp::parse(text), Some(Timestamp(us)), "{text}");
    }
    assert_eq!(Timestamp::parse("2026-11-26T09:52:38Z"), Some(Timestamp(1_795_686_758_000_000)));
    assert_eq!(Timestamp::parse("12345"), Some(Timestamp(12345)));
    for bad in [
        "2026-13-01T00:00:00Z",
        "2026-11-26T09:52:38",
        "2026-11-26T09:52:38+01:00",
        "1969-12-31T23:59:59Z",
        "yesterday",
    ] {
        assert_eq!(Timestamp::parse(bad), None, "{bad}");
    }
}
