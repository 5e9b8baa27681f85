use super::*;

#[test]
fn matches_need_every_character_in_order() {
    assert!(score("blt", "Blotter").is_some());
    assert!(score("BLOT", "blotter").is_some(), "case does not matter");
    assert!(score("tlb", "Blotter").is_none(), "order matters");
    assert!(score("x", "Blotter").is_none());
    assert_eq!(score("", "anything"), Some(0));
    assert_eq!(score("  ", "anything"), Some(0));
}

#[test]
fn word_starts_and_runs_rank_first() {
    fn rank(q: &str, names: &[&'static str]) -> Vec<&'static str> {
        let mut v: Vec<(&'static str, i32)> = names.iter().filter_map(|n| score(q, n).map(|s| (*n, s))).collect();
        v.sort_by_key(|(_, s)| std::cmp::Reverse(*s));
        v.into_iter().map(|(n, _)| n).collect()
    }
    assert_eq!(rank("blot", &["Bus log tool", "Blotter"]), ["Blotter", "Bus log tool"]);
    assert_eq!(rank("ot", &["Stock ticker", "Order ticket"]), ["Order ticket", "Stock ticker"]);
    assert_eq!(rank("news", &["Newswire", "Market news"])[0], "Newswire");
    assert_eq!(rank("ch", &["Watchlist", "Chart"])[0], "Chart");
}

#[test]
fn non_ascii_text_does_not_panic() {
    assert!(score("é", "Café").is_some());
    assert!(score("ß", "Straße").is_some());
    assert!(score("日", "日本株").is_some());
}
