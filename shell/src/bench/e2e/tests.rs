use super::samples::{Notes, PONG, Spread, WARM_UP_BLOCK, stamp, times};

/// Notes for `rounds` rounds of block 0 of kind 0: pings 1000 ns apart, each handed to `b`
/// 100 ns after it reached `a`'s host and answered 400 ns after; each pong handed to `a` 250
/// ns after it reached `b`'s host.
fn notes(rounds: u64) -> Notes {
    let mut n = Notes::default();
    for i in 0..rounds {
        let t = 10_000 + i * 1000;
        n.from_page.insert(stamp(0, 0, i), t);
        n.to_page.insert(stamp(0, 0, i), t + 100);
        n.from_page.insert(stamp(0, 0, i) + PONG, t + 400);
        n.to_page.insert(stamp(0, 0, i) + PONG, t + 650);
    }
    n
}

#[test]
fn round_trips_and_both_one_ways_come_from_consecutive_notes() {
    let t = times(&notes(4), 0, 1, 4);
    assert_eq!(t.round_trip, [1000, 1000, 1000]);
    assert_eq!(t.a_to_b, [400; 4]);
    assert_eq!(t.b_to_a, [600; 3]);
    assert_eq!(t.unanswered, 0);
    // Each round trip is exactly one way there and one way back.
    assert_eq!(t.round_trip[0], t.a_to_b[0] + t.b_to_a[0]);
    // Each one way splits at the hand-over into the page.
    assert_eq!(t.host_to_host, [100, 250, 100, 250, 100, 250, 100]);
    assert_eq!(t.in_page, [300, 350, 300, 350, 300, 350, 300]);
}

#[test]
fn a_ping_without_its_pong_is_counted_and_other_kinds_and_the_warm_up_are_left_out() {
    let mut n = notes(4);
    n.from_page.remove(&(stamp(0, 0, 2) + PONG));
    n.from_page.insert(stamp(1, 0, 0), 5);
    n.from_page.insert(stamp(0, WARM_UP_BLOCK, 0), 1);
    let t = times(&n, 0, 1, 4);
    assert_eq!(t.unanswered, 1);
    assert_eq!(t.a_to_b.len(), 3);
    assert_eq!(t.round_trip.len(), 2, "round 2 has no pong, so it closes no round trip");
}

#[test]
fn notes_keep_the_first_time_of_each_stamp_and_bad_lines_are_named() {
    let mut n = Notes::default();
    n.read("200 7 in\n100 7 in\n300 8 in\n50 7 out\n").unwrap();
    assert_eq!(n.from_page[&7], 100);
    assert_eq!(n.from_page[&8], 300);
    assert_eq!(n.to_page[&7], 50);
    let e = n.read("1 2 in\nabc 3 in\n").unwrap_err();
    assert!(format!("{e:#}").contains("line 2"), "{e:#}");
    for bad in ["1 2 sideways\n", "1 2 in 4\n", "1 2\n", "1\n"] {
        assert!(n.read(bad).is_err(), "{bad}");
    }
}

#[test]
fn spreads_are_in_microseconds() {
    let ns: Vec<u64> = (1..=1000).map(|i| i * 1000).collect();
    let s = Spread::of(&ns);
    assert_eq!(s.count, 1000);
    assert!((s.p50_us - 500.0).abs() < f64::EPSILON, "{s:?}");
    assert!((s.p99_us - 990.0).abs() < f64::EPSILON, "{s:?}");
    assert!((s.p999_us - 999.0).abs() < f64::EPSILON, "{s:?}");
    assert_eq!(Spread::of(&[]).count, 0);
}
