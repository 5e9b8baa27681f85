use std::time::Duration;

use super::*;

#[test]
fn families_are_first_segments_and_capped() {
    let mut f = Families::default();
    f.of("prices.lse.vod").published += 1;
    f.of("prices.nyse.ibm").published += 1;
    f.of("orders.desk1").published += 1;
    f.of("single").published += 1;
    let list = f.list();
    assert_eq!(list[0], ("prices".to_owned(), FamilyStats { published: 2, ..FamilyStats::default() }));
    assert_eq!(list[1].0, "orders");
    assert_eq!(list[2].0, "single");
    for i in 0..200 {
        f.of(&format!("family{i}.x")).published += 1;
    }
    let list = f.list();
    assert_eq!(list.len(), FAMILY_LIMIT);
    let other = list.iter().find(|(n, _)| n == OTHER_FAMILY).unwrap();
    // 3 families named first, then 60 more by name; the other 140 counted together.
    assert_eq!(other.1.published, 200 - (FAMILY_LIMIT as u64 - 1 - 3));
    assert_eq!(list.iter().map(|(_, s)| s.published).sum::<u64>(), 204);
}

#[test]
fn latency_buckets_by_upper_bound() {
    let l = Latency::default();
    l.observe(Duration::from_nanos(999));
    l.observe(Duration::from_nanos(1_000));
    l.observe(Duration::from_nanos(1_001));
    l.observe(Duration::from_secs(5));
    let s = l.snapshot();
    assert_eq!(s.count, 4);
    assert_eq!(s.counts[0], 2, "at or under 1 µs");
    assert_eq!(s.counts[1], 1, "under 2.5 µs");
    assert_eq!(*s.counts.last().unwrap(), 1, "past every bound");
    assert_eq!(s.counts.len(), s.bounds_ns.len() + 1);
    assert_eq!(s.sum_ns, 999 + 1_000 + 1_001 + 5_000_000_000);
}

#[test]
fn the_cache_never_confuses_families() {
    let mut f = Families::default();
    // Names that share a prefix, differ in length, or are longer than the cache's 8 bytes.
    let names = ["a", "ab", "abc", "abcdefgh", "abcdefghi", "abcdefghij", "b", "ba", "prices", "orders"];
    for round in 0..3 {
        for (i, n) in names.iter().enumerate() {
            for _ in 0..=i {
                f.of(&format!("{n}.x.{round}")).published += 1;
            }
            f.of(n).delivered += 1;
        }
    }
    for (i, (name, stats)) in f.list().iter().enumerate() {
        assert_eq!(name, names[i]);
        assert_eq!((stats.published, stats.delivered), (3 * (i as u64 + 1), 3), "{name}");
    }
}

#[test]
fn short_families_are_found_by_words() {
    for (topic, family) in [
        ("prices.x", "prices"),
        ("a.b", "a"),
        ("abc", "abc"),
        ("abcdefgh", "abcdefgh"),
        ("abcdefgh.x", "abcdefgh"),
        ("abcdefg.x.y", "abcdefg"),
        ("p.q.r.s.t.u.v", "p"),
        ("x..y", "x"),
    ] {
        let (key, end) = short_family(topic.as_bytes());
        assert_eq!(end, Some(family.len()), "{topic}");
        let mut bytes = [0u8; 8];
        bytes[..family.len()].copy_from_slice(family.as_bytes());
        assert_eq!(key, u64::from_le_bytes(bytes), "{topic}");
    }
    assert_eq!(short_family(b"abcdefghi.x").1, None);
    assert_eq!(short_family(b"abcdefghijk").1, None);
}
