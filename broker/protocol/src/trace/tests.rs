use proptest::prelude::*;

use super::*;

const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn reads_the_recommendations_example() {
    let t = TraceParent::parse(GOOD).unwrap();
    assert_eq!(t.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
    assert_eq!(t.span_id, 0x00f067aa0ba902b7);
    assert!(t.sampled());
    assert_eq!(t.to_string(), GOOD);
    assert_eq!(t.trace_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert!(!TraceParent::parse(&GOOD.replace("-01", "-00")).unwrap().sampled());
}

#[test]
fn reads_a_later_version_by_its_first_fields() {
    let t = TraceParent::parse(&GOOD.replacen("00", "01", 1)).unwrap();
    assert_eq!(t.span_id, 0x00f067aa0ba902b7);
    assert!(TraceParent::parse(&format!("{}-what-comes-next", GOOD.replacen("00", "cc", 1))).is_ok());
    assert!(TraceParent::parse(&format!("{}x", GOOD.replacen("00", "cc", 1))).is_err());
}

#[test]
fn refuses_what_the_recommendation_refuses_saying_why() {
    let cases = [
        ("", "shorter"),
        (&GOOD[..54], "shorter"),
        (&format!("{GOOD}-"), "55 characters"),
        (&GOOD.replacen("00", "ff", 1), "version ff"),
        (&GOOD.replacen("00", "0g", 1), "version"),
        (&GOOD.to_uppercase(), "lowercase"),
        (&GOOD.replace("4bf92f3577b34da6a3ce929d0e0e4736", &"0".repeat(32)), "trace id is all zeros"),
        (&GOOD.replace("00f067aa0ba902b7", &"0".repeat(16)), "parent id is all zeros"),
        (&GOOD.replace("-01", "-0x"), "flags"),
        (&GOOD.replacen('-', "_", 1), "separated"),
        (&"0".repeat(300), "256"),
    ];
    for (text, why) in cases {
        let e = TraceParent::parse(text).unwrap_err().to_string();
        assert!(e.contains(why), "{text:?}: {e}");
        assert!(!e.contains('\n'));
    }
}

#[test]
fn a_trace_id_alone() {
    assert_eq!(parse_trace_id("4bf92f3577b34da6a3ce929d0e0e4736"), Some(0x4bf92f3577b34da6a3ce929d0e0e4736));
    assert_eq!(parse_trace_id(&"0".repeat(32)), None);
    assert_eq!(parse_trace_id("4bf92f"), None);
    assert_eq!(parse_trace_id("4BF92F3577B34DA6A3CE929D0E0E4736"), None);
}

proptest! {
    #[test]
    fn what_is_written_reads_back(trace in 1u128.., span in 1u64.., flags in any::<u8>()) {
        let t = TraceParent { trace_id: trace, span_id: span, flags };
        let text = t.to_string();
        prop_assert_eq!(text.len(), TRACEPARENT_LEN);
        prop_assert_eq!(TraceParent::parse(&text).unwrap(), t);
        let mut out = Vec::new();
        t.write(&mut out);
        prop_assert_eq!(out, text.into_bytes());
    }

    #[test]
    fn any_text_is_read_or_refused(text in ".{0,80}") {
        let _ = TraceParent::parse(&text);
    }
}
