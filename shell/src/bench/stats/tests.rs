use super::*;

#[test]
fn nearest_rank() {
    let mut v: Vec<u64> = (1..=100).rev().collect();
    assert_eq!(p50_p99(&mut v), (50, 99));
    assert_eq!(percentile(&[7], 99.0), 7);
    assert_eq!(percentile(&[], 50.0), 0);
    assert_eq!(percentile(&[1, 2], 0.0), 1);
    // 99.9% of 1,000 in floating point is a hair over 999: still rank 999.
    let v: Vec<u64> = (1..=1000).collect();
    assert_eq!(percentile(&v, 99.9), 999);
    assert_eq!(percentile(&v, 100.0), 1000);
}

#[test]
fn on_and_off_run_in_turns_and_compare_medians() {
    let mut order = Vec::new();
    let r = OnOff::measure(3, |on| {
        order.push(on);
        Ok(if on { 90.0 } else { 100.0 })
    })
    .unwrap()
    .unwrap();
    assert_eq!(order, [false, true, true, false, false, true]);
    assert!((r.cost_percent - 10.0).abs() < 1e-9);
    assert!((r.best_cost_percent - 10.0).abs() < 1e-9);
    assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), 2.5);
}
