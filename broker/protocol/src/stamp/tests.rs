use super::stamps;

fn all(text: &str) -> Vec<u64> {
    stamps(text).collect()
}

#[test]
fn finds_stamps_in_plain_and_escaped_json_and_in_batches() {
    assert_eq!(all(r#"{"type":"x","benchStamp":42}"#), [42]);
    assert_eq!(all(r#"{"data":"{\"benchStamp\":7}"}"#), [7]);
    assert_eq!(all(r#"[{"benchStamp" : 1},{"benchStamp": 2 }]"#), [1, 2]);
    assert_eq!(all(r#"{"benchStamp":18446744073709551615}"#), Vec::<u64>::new(), "20 digits: not a stamp");
    assert_eq!(all(r#"{"benchStamp":1000000000000123}"#), [1_000_000_000_000_123]);
}

#[test]
fn what_is_not_an_unsigned_integer_is_no_stamp() {
    for text in [
        r#"{"benchStamp":"12"}"#,
        r#"{"benchStamp":-3}"#,
        r#"{"benchStamp":1.5}"#,
        r#"{"benchStamp":2e3}"#,
        r#"{"benchStamp":}"#,
        r#"{"benchStamp"#,
        r#"{"benchStampX":5}"#,
        "benchStamp",
        "",
        r#"{"other":12}"#,
    ] {
        assert_eq!(all(text), Vec::<u64>::new(), "{text}");
    }
}

#[test]
fn a_text_full_of_the_name_is_read_once_per_occurrence() {
    let text = "benchStamp:".repeat(1000);
    assert_eq!(all(&text).len(), 0);
    let text = "benchStamp:1 ".repeat(1000);
    assert_eq!(all(&text), vec![1; 1000]);
}
