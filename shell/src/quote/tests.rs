use super::*;

#[test]
fn long_values_are_cut_and_short_ones_kept() {
    assert_eq!(quote("a\"b"), r#""a\"b""#);
    let long = "é".repeat(100_000);
    let q = quote(&long);
    assert!(q.len() < 300, "{q}");
    assert!(q.ends_with("(100000 characters)"));
}
