use super::*;

#[test]
fn nearest_rank() {
    let mut v: Vec<u64> = (1..=100).rev().collect();
    assert_eq!(p50_p99(&mut v), (50, 99));
    assert_eq!(percentile(&[7], 99.0), 7);
    assert_eq!(percentile(&[], 50.0), 0);
    assert_eq!(percentile(&[1, 2], 0.0), 1);
}
