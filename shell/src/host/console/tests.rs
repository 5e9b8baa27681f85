use super::*;

#[test]
fn only_wanted_apps_are_logged_and_each_within_its_budget() {
    let off = ConsoleLog::new("news", 1, false);
    assert!(!off.line(ConsoleLevel::Info, "hello"));
    let on = ConsoleLog::new("news", 2, true);
    let logged = (0..PER_WINDOW + 20).filter(|i| on.line(ConsoleLevel::Warn, &format!("line {i}"))).count();
    assert_eq!(logged, PER_WINDOW as usize);
    assert_eq!(on.window.lock().2, 20, "the dropped lines are counted");
}
