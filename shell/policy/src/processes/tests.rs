use super::*;

#[test]
fn a_host_of_its_own_wins_and_an_app_the_policy_does_not_name_is_the_manifests() {
    let rules: ProcessRules =
        serde_json::from_str(r#"{"alone": ["risk"], "groups": {"news": "feeds", "risk": "x"}}"#).unwrap();
    assert_eq!(rules.of("risk"), Some(ProcessChoice::Alone));
    assert_eq!(rules.of("news"), Some(ProcessChoice::Group("feeds".into())));
    assert_eq!(rules.of("prices"), None);
    let none: ProcessRules = serde_json::from_str(r#"{"alone": ["*"]}"#).unwrap();
    assert_eq!(none.of("prices"), Some(ProcessChoice::Alone));
}

#[test]
fn group_names_are_plain_directory_names() {
    for good in ["desk", "a", "quotes-1.x", "A_b", &"x".repeat(64)] {
        assert!(is_group_name(good), "{good}");
    }
    for bad in ["", ".", "..", ".hidden", "../up", "a/b", "a b", "é", &"x".repeat(65)] {
        assert!(!is_group_name(bad), "{bad}");
    }
    let rules: ProcessRules = serde_json::from_str(r#"{"groups": {"news": "../x", "ok": "fine"}}"#).unwrap();
    let mut problems = Vec::new();
    rules.problems(&mut problems);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("processes.groups.news: \"../x\""), "{problems:?}");
    assert!(serde_json::from_str::<ProcessRules>(r#"{"together": []}"#).is_err());
}
