use super::*;

fn report(time: &str) -> Report {
    Report {
        time: time.to_owned(),
        version: "0.1.0".into(),
        pid: 7,
        thread: "main".into(),
        message: "boom".into(),
        location: "src/x.rs:1:1".into(),
        backtrace: "0: main".into(),
    }
}

#[test]
fn reports_are_written_whole_and_the_oldest_go() {
    let dir = tempfile::tempdir().unwrap();
    let crashes = dir.path().join("crashes");
    for i in 0..(KEEP + 3) {
        write(&crashes, &report(&format!("2026-12-07T12:{:02}:00.000Z", i))).unwrap();
    }
    let left = list(&crashes);
    assert_eq!(left.len(), KEEP);
    let oldest: Report = serde_json::from_slice(&std::fs::read(&left[0]).unwrap()).unwrap();
    assert_eq!(oldest.time, "2026-12-07T12:03:00.000Z");
    let newest: Report = serde_json::from_slice(&std::fs::read(left.last().unwrap()).unwrap()).unwrap();
    assert_eq!(newest, report(&format!("2026-12-07T12:{:02}:00.000Z", KEEP + 2)));
}

#[test]
fn a_profile_that_cannot_be_written_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    assert!(write(&file.join("crashes"), &report("2026-12-07T12:00:00.000Z")).is_err());
}
