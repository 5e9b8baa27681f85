//! The supervisor with real `tessera-app-host` processes: crashes, hangs and crash loops are
//! noticed and handled, the other apps do not notice, and nothing outlives a shutdown.

use std::path::Path;
use std::time::{Duration, Instant};

use broker::{AppId, Broker};
use shell::host::supervisor::{AppSpec, AppState, InstanceStatus, RestartPolicy, Supervisor};
use tests::bin;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn spec(app: &str, args: &[&str]) -> AppSpec {
    let mut a = vec!["headless".to_owned()];
    a.extend(args.iter().map(|s| (*s).to_owned()));
    AppSpec::new(AppId::new(app), bin("tessera-app-host"), a)
}

fn policy() -> RestartPolicy {
    RestartPolicy {
        backoff_start: Duration::from_millis(100),
        backoff_max: Duration::from_millis(400),
        max_crashes: 4,
        window: Duration::from_secs(30),
        heartbeat_every: Duration::from_millis(200),
        heartbeat_timeout: Duration::from_millis(1500),
        grace: Duration::from_millis(500),
        load_timeout: Duration::from_secs(10),
        memory_limit_bytes: Some(256 << 20),
        cpu_limit_percent: None,
        cpu_window: Duration::from_secs(2),
        rate_limit: None,
        group_linger: Duration::from_secs(2),
    }
}

/// Polls until `f` holds for the status of `instance`, or panics after `limit`.
fn wait_for(sup: &Supervisor, instance: u64, limit: Duration, f: impl Fn(&InstanceStatus) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        let st = sup.status().into_iter().find(|s| s.instance == instance).unwrap();
        if f(&st) {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "instance {instance} stuck at {st:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ")
}

#[test]
fn sigkill_is_detected_and_restarted_while_others_keep_running() {
    let rt = runtime();
    let _guard = rt.enter();
    let broker = Broker::default();
    let sup = Supervisor::new(broker.clone(), policy());
    let ids: Vec<u64> = ["blotter", "chart", "news"].iter().map(|a| sup.launch(spec(a, &[]))).collect();
    for id in &ids {
        wait_for(&sup, *id, Duration::from_secs(10), |s| s.state == AppState::Running && s.pid.is_some());
    }
    let pids: Vec<u32> = sup.status().iter().map(|s| s.pid.unwrap()).collect();
    assert_eq!(pids.iter().collect::<std::collections::HashSet<_>>().len(), 3, "distinct processes");
    // Each host is a broker client with its app's identity.
    let deadline = Instant::now() + Duration::from_secs(5);
    while broker.stats().clients < 3 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }

    let victim = pids[1];
    std::process::Command::new("kill").args(["-9", &victim.to_string()]).status().unwrap();
    let detected = wait_for(&sup, ids[1], Duration::from_secs(1), |s| s.pid != Some(victim));
    let back = wait_for(&sup, ids[1], Duration::from_secs(3), |s| {
        s.state == AppState::Running && s.pid.is_some_and(|p| p != victim)
    });
    eprintln!("SIGKILL detected after {detected:?}, running again after {back:?}");
    let after = sup.status();
    assert_eq!(after[1].restarts, 1);
    assert!(after[1].last_exit.as_deref().unwrap_or_default().contains("signal 9"), "{:?}", after[1].last_exit);
    assert_eq!((after[0].pid, after[2].pid), (Some(pids[0]), Some(pids[2])), "the others kept their processes");

    rt.block_on(sup.shutdown());
    for s in sup.status() {
        assert_eq!(s.state, AppState::Stopped);
    }
    for pid in [pids[0], pids[2]] {
        assert!(!alive(pid), "app host {pid} outlived the shutdown");
    }
}

#[test]
fn a_hung_host_is_killed_and_restarted() {
    let rt = runtime();
    let _guard = rt.enter();
    let sup = Supervisor::new(Broker::default(), policy());
    let id = sup.launch(spec("stuck", &["--hang-after-ms", "300"]));
    let first = wait_for(&sup, id, Duration::from_secs(10), |s| s.state == AppState::Running && s.pid.is_some());
    let _ = first;
    let pid = sup.status()[0].pid.unwrap();
    let took = wait_for(&sup, id, Duration::from_secs(5), |s| s.restarts >= 1);
    eprintln!("hang detected and restarted after {took:?}");
    assert_eq!(sup.status()[0].last_exit.as_deref(), Some("hung: no answer to pings"));
    assert!(!alive(pid), "the hung host was killed");
    rt.block_on(sup.shutdown());
}

#[test]
fn a_crash_loop_marks_the_app_failed() {
    let rt = runtime();
    let _guard = rt.enter();
    let sup = Supervisor::new(Broker::default(), policy());
    let id = sup.launch(spec("broken", &["--crash-with", "3"]));
    wait_for(&sup, id, Duration::from_secs(10), |s| s.state == AppState::Failed);
    let st = &sup.status()[0];
    assert_eq!(st.restarts, 3, "restarted until the fourth crash");
    assert_eq!(st.last_exit.as_deref(), Some("exited with code 3"));
    assert_eq!(st.pid, None);
    rt.block_on(sup.shutdown());
}

#[test]
fn a_host_over_its_memory_limit_is_killed_and_reported() {
    let rt = runtime();
    let _guard = rt.enter();
    let broker = Broker::default();
    let sup = Supervisor::new(broker, RestartPolicy { max_crashes: 1, ..policy() });
    let leaky = sup.launch(spec("leaky", &["--allocate-mib", "400"]));
    let fine = sup.launch(spec("fine", &[]));
    wait_for(&sup, leaky, Duration::from_secs(10), |s| s.state == AppState::Failed);
    let st = sup.status();
    let reason = st[0].last_exit.clone().unwrap_or_default();
    assert!(reason.contains("memory limit"), "{reason}");
    wait_for(&sup, fine, Duration::from_secs(5), |s| s.state == AppState::Running);
    rt.block_on(sup.shutdown());
}

#[test]
fn a_host_over_its_cpu_limit_is_killed_and_reported() {
    let rt = runtime();
    let _guard = rt.enter();
    let sup = Supervisor::new(Broker::default(), RestartPolicy { max_crashes: 1, ..policy() });
    let busy = sup.launch(AppSpec { cpu_limit_percent: Some(30), ..spec("busy", &["--burn-cpu"]) });
    let calm = sup.launch(AppSpec { cpu_limit_percent: Some(30), ..spec("calm", &[]) });
    let took = wait_for(&sup, busy, Duration::from_secs(15), |s| s.state == AppState::Failed);
    eprintln!("CPU hog stopped after {took:?}");
    let reason = sup.status()[0].last_exit.clone().unwrap_or_default();
    assert!(reason.contains("CPU limit"), "{reason}");
    let calm_status =
        wait_for(&sup, calm, Duration::from_secs(5), |s| s.state == AppState::Running && s.cpu_percent.is_some());
    let _ = calm_status;
    let st = sup.status();
    assert!(st[1].cpu_percent.unwrap() < 30.0, "an idle host is under the limit: {:?}", st[1]);
    rt.block_on(sup.shutdown());
}

#[test]
fn a_host_that_breaks_the_protocol_is_restarted() {
    let rt = runtime();
    let _guard = rt.enter();
    let sup = Supervisor::new(Broker::default(), RestartPolicy { max_crashes: 2, ..policy() });
    let id = sup.launch(spec("garbled", &["--send-garbage"]));
    wait_for(&sup, id, Duration::from_secs(10), |s| s.restarts >= 1);
    let reason = sup.status()[0].last_exit.clone().unwrap_or_default();
    assert!(reason.contains("broke the protocol"), "{reason}");
    rt.block_on(sup.shutdown());
}

#[test]
fn a_frozen_then_killed_host_is_reported_as_hung_not_as_a_protocol_breach() {
    let rt = runtime();
    let _guard = rt.enter();
    let sup = Supervisor::new(Broker::default(), policy());
    let id = sup.launch(spec("frozen", &[]));
    wait_for(&sup, id, Duration::from_secs(10), |s| s.state == AppState::Running && s.pid.is_some());
    let pid = sup.status()[0].pid.unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    std::thread::sleep(Duration::from_millis(800));
    assert!(std::process::Command::new("kill").args(["-KILL", &pid]).status().unwrap().success());
    wait_for(&sup, id, Duration::from_secs(10), |s| s.restarts >= 1);
    let why = sup.status()[0].last_exit.clone().unwrap_or_default();
    assert!(why.contains("hung") && why.contains("signal 9"), "{why}");
    assert!(!why.contains("protocol"), "{why}");
    rt.block_on(sup.shutdown());
}
