use super::*;

#[test]
fn a_pss_reading_is_reused_while_the_resident_size_holds_and_read_again_when_it_moves() {
    let mut me = read_proc(std::process::id()).unwrap();
    me.rss_pages = 1000;
    let mut cache = PssCache::default();
    let first = cache.memory(std::slice::from_ref(&me), PssCache::NEAR_LIMIT);
    assert!(first > 0);
    // 5% more resident: the reading is scaled, not taken again.
    me.rss_pages = 1050;
    assert_eq!(cache.memory(std::slice::from_ref(&me), PssCache::NEAR_LIMIT), first * 1050 / 1000);
    // Twice as much: read again (the process's real PSS has not doubled).
    me.rss_pages = 2000;
    assert!(cache.memory(std::slice::from_ref(&me), PssCache::NEAR_LIMIT) < first * 3 / 2);
    // A process that is gone is forgotten.
    cache.memory(&[], PssCache::NEAR_LIMIT);
    assert!(cache.read.is_empty());
}

#[test]
fn a_tree_is_followed_through_its_processes_children_and_loses_what_exits() {
    // A shell whose main thread starts a sleeper and a shell that starts one more.
    let mut top = std::process::Command::new("sh")
        .args(["-c", "sleep 30 & sh -c 'sleep 30 & wait' & echo started; wait"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(top.stdout.take().unwrap()), &mut line).unwrap();
    let root = top.id();
    let pids = |tree: &[Proc]| {
        let mut v: Vec<u32> = tree.iter().map(|p| p.pid).collect();
        v.sort_unstable();
        v
    };
    let full = {
        let mut whole = Vec::new();
        for _ in 0..50 {
            whole = process_tree(root);
            if whole.len() == 4 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        whole
    };
    assert_eq!(full.len(), 4, "{full:?}");
    let mut watch = TreeWatch::default();
    // The first look reads every thread's children; the next follow the main threads' and the
    // known pids.
    assert_eq!(pids(&watch.tree(root)), pids(&full));
    assert!(std::path::Path::new(&format!("/proc/{root}/task/{root}/children")).exists());
    assert_eq!(pids(&followed(root, &[], false)), pids(&full), "the children files alone find the tree");
    assert_eq!(pids(&watch.tree(root)), pids(&full));
    // A sleeper that exits leaves the tree.
    let gone = full.iter().find(|p| p.comm == "sleep").unwrap().pid;
    let _ = std::process::Command::new("kill").arg(gone.to_string()).status();
    for _ in 0..50 {
        if !watch.tree(root).iter().any(|p| p.pid == gone) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!watch.tree(root).iter().any(|p| p.pid == gone));
    assert_eq!(watch.tree(root).len(), 3);
    // A process known from before whose parent is not in the tree is not kept.
    assert!(followed(root, &[std::process::id()], false).iter().all(|p| p.pid != std::process::id()));
    kill_tree(root);
    let _ = top.wait();
}

#[test]
fn a_child_another_thread_started_is_found_by_the_thorough_look_without_reading_all_of_proc() {
    // Started from a thread of its own (kept alive while looked at): what it starts is listed in
    // that thread's `children` file, not the main thread's.
    std::thread::spawn(|| {
        let me = std::process::id();
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        let has = |tree: &[Proc]| tree.iter().any(|p| p.pid == pid);
        assert!(!has(&followed(me, &[], false)), "the main thread's file does not list it");
        assert!(has(&followed(me, &[], true)), "every thread's files do");
        let mut watch = TreeWatch::default();
        assert!(has(&watch.tree(me)), "the first look is thorough");
        assert!(has(&watch.tree(me)), "and then it is known");
        let _ = child.kill();
        let _ = child.wait();
    })
    .join()
    .unwrap();
}

#[test]
fn a_small_proc_file_is_read_whole_and_a_long_one_too() {
    let me = std::process::id();
    let stat = read_small(&format!("/proc/{me}/stat")).unwrap();
    assert!(stat.starts_with(&format!("{me} (")), "{stat}");
    let dir = tempfile::tempdir().unwrap();
    let long = dir.path().join("long");
    let text: String = (0..3000).map(|i| format!("{i} ")).collect();
    std::fs::write(&long, &text).unwrap();
    assert_eq!(read_small(long.to_str().unwrap()).unwrap(), text, "longer than the buffer");
    assert_eq!(read_small("/proc/0/stat"), None);
}
