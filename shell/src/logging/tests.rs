use super::*;

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
}

#[test]
fn the_file_rotates_by_size_and_keeps_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let file = RotatingFile::open(&logs, "t.log", 100, 2).unwrap();
    for n in 0..20 {
        let mut w = file.make_writer();
        writeln!(w, "line {n:02} ........").unwrap();
    }
    // 20-byte lines, 100-byte files: five lines each; two old files kept.
    assert_eq!(lines(&logs.join("t.log")), (15..20).map(|n| format!("line {n:02} ........")).collect::<Vec<_>>());
    assert_eq!(lines(&logs.join("t.log.1"))[0], "line 10 ........");
    assert_eq!(lines(&logs.join("t.log.2"))[0], "line 05 ........");
    assert!(!logs.join("t.log.3").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&logs).unwrap().permissions().mode() & 0o777, 0o700);
    }
}

#[test]
fn lines_from_many_threads_never_interleave() {
    let dir = tempfile::tempdir().unwrap();
    let file = RotatingFile::open(dir.path(), "t.log", 1 << 30, 1).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let file = file.clone();
            std::thread::spawn(move || {
                for n in 0..500 {
                    let mut w = file.make_writer();
                    // Written in pieces, as a formatter does.
                    write!(w, "{{\"thread\":{t},").unwrap();
                    write!(w, "\"n\":{n}}}").unwrap();
                    writeln!(w).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let all = lines(&dir.path().join("t.log"));
    assert_eq!(all.len(), 2000);
    for l in all {
        serde_json::from_str::<serde_json::Value>(&l).unwrap();
    }
}
