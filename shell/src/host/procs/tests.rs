use super::*;

#[test]
fn a_pss_reading_is_reused_while_the_resident_size_holds_and_read_again_when_it_moves() {
    let mut me = read_proc(std::process::id()).unwrap();
    me.rss_pages = 1000;
    let mut cache = PssCache::default();
    let first = cache.memory(std::slice::from_ref(&me));
    assert!(first > 0);
    // 5% more resident: the reading is scaled, not taken again.
    me.rss_pages = 1050;
    assert_eq!(cache.memory(std::slice::from_ref(&me)), first * 1050 / 1000);
    // Twice as much: read again (the process's real PSS has not doubled).
    me.rss_pages = 2000;
    assert!(cache.memory(std::slice::from_ref(&me)) < first * 3 / 2);
    // A process that is gone is forgotten.
    cache.memory(&[]);
    assert!(cache.read.is_empty());
}
