//! Headless end to end: the real shell (`tessera run`) under Xvfb with three real web apps, each
//! in its own `tessera-app-host` with its own WebKit web process, driven only through
//! `tessera ctl` as a script or a QA engineer would. Checks isolation (a killed, stuck or
//! bloated app goes alone), the bus between pages and the shell, and the pixels on screen.
//!
//! Needs `xvfb-run` and `dbus-run-session` (packaging/dev/setup.sh installs them). The screenshot
//! is kept in `target/debug/e2e/shell.png`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::{bin, target_dir, workspace_root};

pub(crate) struct Shell {
    pub(crate) child: Child,
    pub(crate) socket: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Shell {
    pub(crate) fn start(memory_limit_mib: u64) -> Self {
        Self::start_with(memory_limit_mib, &[])
    }

    fn start_with(memory_limit_mib: u64, env: &[(&str, &str)]) -> Self {
        Self::start_full("e2e.json", None, memory_limit_mib, env, "shell")
    }

    /// Starts `tessera run` with the fixture manifest `manifest`, in `profile` (else a fresh
    /// one), logging to `target/debug/e2e/<name>.log`.
    pub(crate) fn start_full(
        manifest: &str,
        profile: Option<&Path>,
        memory_limit_mib: u64,
        env: &[(&str, &str)],
        name: &str,
    ) -> Self {
        for tool in ["xvfb-run", "dbus-run-session", "Xvfb"] {
            assert!(
                Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().unwrap().status.success(),
                "{tool} is missing: run packaging/dev/setup.sh"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir(&run).unwrap();
        std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let socket = run.join("ctl.sock");
        let log = target_dir().join("e2e").join(format!("{name}.log"));
        std::fs::create_dir_all(log.parent().unwrap()).unwrap();
        // A manifest URL is passed as it is; a file is found among the fixtures.
        let manifest = if manifest.starts_with("http") {
            PathBuf::from(manifest)
        } else {
            workspace_root().join("tests/fixtures/e2e").join(manifest)
        };
        let profile = profile.map_or_else(|| dir.path().join("profile"), Path::to_owned);
        let child = Command::new("dbus-run-session")
            .args(["--", "xvfb-run", "-a", "-s", "-screen 0 1280x800x24"])
            .arg(bin("tessera"))
            .arg("run")
            .arg("--manifest")
            .arg(&manifest)
            .arg("--profile")
            .arg(&profile)
            .arg("--ctl-socket")
            .arg(&socket)
            .arg("--memory-limit-mib")
            .arg(memory_limit_mib.to_string())
            .env("XDG_RUNTIME_DIR", &run)
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .env("GDK_BACKEND", "x11")
            .env("NO_AT_BRIDGE", "1")
            .env("TESSERA_LOG", "info")
            // The audit log's key goes in the kernel keyring: no Secret Service runs here.
            .env("TESSERA_KEYRING", "keyutils")
            .envs(env.iter().copied())
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("DISPLAY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .process_group(0)
            .spawn()
            .unwrap();
        Self { child, socket, log, _dir: dir }
    }

    /// The shell's control socket.
    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> =
            text.lines().filter(|l| !l.contains("Gdk-CRITICAL") && !l.contains("dbus-daemon")).collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    pub(crate) fn ctl(&self, args: &[&str]) -> Output {
        Command::new(bin("tessera"))
            .arg("ctl")
            .arg("--ctl-socket")
            .arg(&self.socket)
            .args(args)
            .env("TESSERA_LOG", "warn")
            .output()
            .unwrap()
    }

    pub(crate) fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "tessera ctl {args:?} failed: {}\n--- shell log ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    pub(crate) fn apps(&self) -> Vec<Value> {
        let out = self.ctl(&["apps", "--json"]);
        if !out.status.success() {
            return Vec::new();
        }
        serde_json::from_slice::<Value>(&out.stdout).unwrap().as_array().cloned().unwrap_or_default()
    }

    pub(crate) fn app(&self, instance: u64) -> Value {
        self.apps().into_iter().find(|a| a["instance"] == instance).unwrap_or(Value::Null)
    }

    /// Polls the instance list until `f` holds; returns how long that took.
    pub(crate) fn wait_for(&self, what: &str, limit: Duration, f: impl Fn(&[Value]) -> bool) -> Duration {
        let start = Instant::now();
        loop {
            let apps = self.apps();
            if f(&apps) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "{what}: not within {limit:?}; apps: {apps:#?}\n--- shell log ---\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(15));
        }
    }

    pub(crate) fn eval(&self, instance: u64, js: &str) -> String {
        self.ctl_ok(&["eval", &instance.to_string(), js])
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.ctl(&["quit"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-9", &format!("-{}", self.child.id())]).status();
        let _ = self.child.wait();
    }
}

/// Evaluates `expr` (awaited, up to 60 s) in `instance` and parses the JSON it gives.
pub(crate) fn js(shell: &Shell, instance: u64, expr: &str) -> Value {
    let text = shell.ctl_ok(&["eval", &instance.to_string(), expr, "--timeout", "60"]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{expr}: {e}: {text}"))
}

/// Polls `expr` in `instance` until it gives `want` (as JSON text), for up to 30 s.
pub(crate) fn wait_js(shell: &Shell, instance: u64, expr: &str, want: &str) {
    let start = Instant::now();
    loop {
        let out = shell.ctl(&["eval", &instance.to_string(), expr]);
        let got = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && got == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{expr} in {instance}: {got} (want {want}); {}\n--- shell log ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            shell.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The first instance of `app`.
pub(crate) fn instance_of(shell: &Shell, app: &str) -> u64 {
    shell.apps().iter().find(|a| a["app"] == app).and_then(|a| a["instance"].as_u64()).unwrap()
}

/// The permission prompts waiting for an answer.
pub(crate) fn prompts(shell: &Shell) -> Vec<Value> {
    serde_json::from_str::<Value>(&shell.ctl_ok(&["prompts", "--json"]))
        .unwrap()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Has `instance`'s page take 768 MiB, 16 at a time (past the test desks' memory limit).
pub(crate) fn eat_memory(shell: &Shell, instance: u64) {
    let _ = shell.ctl(&[
        "eval",
        &instance.to_string(),
        "window.hog = []; for (let i = 0; i < 48; i++) hog.push(new Uint8Array(16 << 20).fill(7)); hog.length",
        "--timeout",
        "20",
    ]);
}

pub(crate) fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

pub(crate) fn running_with_page(a: &Value) -> bool {
    a["state"] == "running"
        && a["pid"].is_u64()
        && a["url"].is_string()
        && a["web_pids"].as_array().is_some_and(|w| !w.is_empty())
}

pub(crate) fn pid(a: &Value) -> u64 {
    a["pid"].as_u64().unwrap_or(0)
}

/// Fraction of pixels in the rectangle from `(x0, y0)` to `(x1, y1)` within 12 of `rgb`.
pub(crate) fn share_of_colour_in(png_path: &Path, (x0, y0): (u32, u32), (x1, y1): (u32, u32), rgb: [u8; 3]) -> f64 {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png_path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let (mut hits, mut all) = (0u64, 0u64);
    for y in y0..y1.min(info.height) {
        for x in x0..x1.min(info.width) {
            let i = ((y * info.width + x) * 3) as usize;
            let px = &buf[i..i + 3];
            all += 1;
            if px.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 12) {
                hits += 1;
            }
        }
    }
    hits as f64 / all.max(1) as f64
}

#[test]
fn three_apps_each_in_a_host_of_its_own_survive_each_others_failures() {
    let shell = Shell::start_full("e2e-alone.json", None, 600, &[], "shell");
    let started = shell.wait_for("three apps running with their pages", Duration::from_secs(90), |apps| {
        apps.len() == 3 && apps.iter().all(running_with_page)
    });
    eprintln!("three apps up after {started:?}");
    let apps = shell.apps();
    let ids: Vec<u64> = apps.iter().map(|a| a["instance"].as_u64().unwrap()).collect();
    let names: Vec<&str> = apps.iter().map(|a| a["app"].as_str().unwrap()).collect();
    assert_eq!(names, ["alpha", "beta", "gamma"]);
    let pids: Vec<u64> = apps.iter().map(pid).collect();
    let web: Vec<u64> =
        apps.iter().flat_map(|a| a["web_pids"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap())).collect();
    let distinct = |v: &[u64]| v.iter().collect::<std::collections::HashSet<_>>().len();
    assert_eq!(distinct(&pids), 3, "three app-host processes: {pids:?}");
    assert_eq!(distinct(&web), web.len(), "each host has its own web process: {web:?}");
    assert!(web.len() >= 3);

    // Each page answers, with promises awaited.
    for id in &ids {
        assert_eq!(shell.eval(*id, "1+1"), "2");
    }
    assert_eq!(shell.eval(ids[0], "new Promise(r => setTimeout(() => r({ok: [1, 'x']}), 50))"), r#"{"ok":[1,"x"]}"#);
    let thrown = shell.ctl(&["eval", &ids[0].to_string(), "no_such_thing()"]);
    assert!(!thrown.status.success());
    assert!(String::from_utf8_lossy(&thrown.stderr).contains("ReferenceError"), "{thrown:?}");

    // The bus: the shell to every page, and one page to the others.
    shell.ctl_ok(&["publish", "e2e.hello", r#"{"from":"ctl"}"#]);
    for id in &ids {
        let got = shell.eval(*id, "window.received.length ? window.received[0].data.from : null");
        assert_eq!(got, r#""ctl""#, "instance {id}");
    }
    shell.eval(ids[1], "window.tessera.bus.publish('e2e.page', {from: 'beta'}), 1");
    std::thread::sleep(Duration::from_millis(300));
    let seen = shell.eval(ids[2], "window.received.filter(m => m.topic === 'e2e.page').map(m => m.data.from)");
    assert_eq!(seen, r#"["beta"]"#);

    // Services between pages: alpha calls beta's service; answers, refusals and timeouts.
    assert_eq!(shell.eval(ids[0], "tessera.bus.request('e2e.beta', 'double', {n: 21})"), "42");
    let refused = shell.eval(ids[0], "tessera.bus.request('e2e.beta', 'fail', {}).catch(e => e.message)");
    assert!(refused.contains("refused on purpose"), "{refused}");
    let late = shell
        .eval(ids[0], "tessera.bus.request('e2e.beta', 'slow', {ms: 2000}, {timeoutMs: 200}).catch(e => e.message)");
    assert!(late.contains("no answer within 200 ms"), "{late}");
    let missing = shell.eval(ids[0], "tessera.bus.request('e2e.nobody', 'double', {n: 1}).catch(e => e.message)");
    assert!(missing.contains("e2e.nobody"), "{missing}");

    // Navigation: only the app's own origin; other origins and new windows are refused.
    shell.eval(ids[0], "location.href = 'https://example.com/'; 1");
    assert_eq!(shell.eval(ids[0], "window.open('https://example.com/') === null"), "true");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(shell.eval(ids[0], "location.href"), r#""tessera://alpha/alpha.html""#);

    // What is on screen: each app's page colour fills the place `ctl layout get` gives it.
    let shot = target_dir().join("e2e").join("shell.png");
    let answer = shell.ctl_ok(&["screenshot", shot.to_str().unwrap()]);
    assert!(answer.contains("\"width\":1280"), "{answer}");
    let placed = crate::layout::layout(&shell);
    assert_eq!(crate::layout::bounds(&placed).len(), 3, "{placed}");
    crate::layout::check_pixels(&shell, &shot, &placed);

    // An app's saved state survives its crash: the restarted page gets it back.
    shell.eval(ids[1], "tessera.workspace.setState({draft: 'buy 100', n: 5}), 1");
    assert_eq!(shell.eval(ids[1], "tessera.workspace.getState()"), "null", "nothing was restored at start");
    std::thread::sleep(Duration::from_millis(300));

    // SIGKILL one host: noticed within a second, back within three; the others do not notice.
    let victim = pids[1];
    let killed_at = Instant::now();
    assert!(Command::new("kill").args(["-9", &victim.to_string()]).status().unwrap().success());
    shell.wait_for("the kill noticed", Duration::from_secs(5), |apps| {
        apps.iter().any(|a| a["instance"] == ids[1] && (a["state"] != "running" || pid(a) != victim))
    });
    let detected = killed_at.elapsed();
    // Sent while it is down: kept for it, and delivered when it is back.
    shell.eval(ids[0], "tessera.bus.send('beta', 'e2e.direct', {n: 7}), 1");
    shell.wait_for("the killed app back", Duration::from_secs(10), |apps| {
        apps.iter().any(|a| a["instance"] == ids[1] && a["state"] == "running" && pid(a) != victim && pid(a) != 0)
    });
    let back = killed_at.elapsed();
    shell.wait_for("its page back", Duration::from_secs(30), |apps| {
        apps.iter().any(|a| a["instance"] == ids[1] && running_with_page(a) && pid(a) != victim)
    });
    let page_back = killed_at.elapsed();
    eprintln!("SIGKILL: detected after {detected:?}, running after {back:?}, page loaded after {page_back:?}");
    assert!(detected < Duration::from_secs(1), "detection took {detected:?}");
    assert!(back < Duration::from_secs(3), "restart took {back:?}");
    let now = shell.apps();
    assert_eq!((pid(&now[0]), pid(&now[2])), (pids[0], pids[2]), "the others kept their processes");
    assert!(now[1]["last_exit"].as_str().unwrap_or_default().contains("signal 9"), "{:?}", now[1]);
    for id in &ids {
        assert_eq!(shell.eval(*id, "1+1"), "2");
    }
    assert_eq!(shell.eval(ids[1], "tessera.workspace.getState()"), r#"{"draft":"buy 100","n":5}"#);
    assert_eq!(
        shell.eval(ids[1], "window.direct.map(m => [m.topic, m.from, m.data.n])"),
        r#"[["e2e.direct","alpha",7]]"#,
        "the message sent while beta restarted"
    );

    // A page stuck in a loop: its host still answers pings, but the page's probe does not.
    let spin_from = Instant::now();
    assert_eq!(shell.eval(ids[2], "setTimeout(() => { for (;;) {} }, 20), 'spinning'"), r#""spinning""#);
    shell.wait_for("the stuck page noticed", Duration::from_secs(10), |apps| {
        apps.iter().any(|a| a["instance"] == ids[2] && a["restarts"] == 1)
    });
    let stuck = spin_from.elapsed();
    eprintln!("stuck page detected and restarted after {stuck:?}");
    assert!(stuck < Duration::from_secs(5), "took {stuck:?}");
    assert!(!alive(pids[2]), "the stuck host was killed");
    let after = shell.app(ids[2]);
    assert!(after["last_exit"].as_str().unwrap_or_default().contains("script does not answer"), "{after:?}");
    shell.wait_for("the stuck app back", Duration::from_secs(30), |apps| {
        apps.iter().any(|a| a["instance"] == ids[2] && running_with_page(a))
    });
    assert_eq!(shell.eval(ids[2], "1+1"), "2");

    // A page that eats memory: its host and web process are killed and it is reported; the shell
    // and the other apps carry on.
    let hog: u64 = shell.ctl_ok(&["launch", "alpha"]).parse().unwrap();
    shell.wait_for("a fourth instance", Duration::from_secs(60), |apps| {
        apps.iter().any(|a| a["instance"] == hog && running_with_page(a))
    });
    let hog_web: Vec<u64> =
        shell.app(hog)["web_pids"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap()).collect();
    eat_memory(&shell, hog);
    shell.wait_for("the memory hog killed", Duration::from_secs(20), |apps| {
        apps.iter()
            .any(|a| a["instance"] == hog && a["last_exit"].as_str().unwrap_or_default().contains("memory limit"))
    });
    for p in &hog_web {
        let deadline = Instant::now() + Duration::from_secs(3);
        while alive(*p) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(*p), "the hog's web process {p} survived");
    }
    for id in &ids {
        assert_eq!(shell.eval(*id, "1+1"), "2", "instance {id} after the hog");
    }

    // A navigation within the app's own origin is allowed: the host asks the shell without
    // holding its loop (the page went on answering while it waited) and lets WebKit go on.
    shell.eval(ids[0], "location.href = 'alpha.html?again'; 1");
    wait_js(&shell, ids[0], "location.href", r#""tessera://alpha/alpha.html?again""#);

    // Quit: everything goes, nothing is left behind.
    let all: Vec<u64> = shell
        .apps()
        .iter()
        .flat_map(|a| {
            let mut v = vec![pid(a)];
            v.extend(a["web_pids"].as_array().into_iter().flatten().filter_map(Value::as_u64));
            v
        })
        .filter(|p| *p != 0)
        .collect();
    shell.ctl_ok(&["quit"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut shell = shell;
    loop {
        if let Ok(Some(status)) = shell.child.try_wait() {
            assert!(status.success(), "the shell exited with {status}\n{}", shell.log_tail());
            break;
        }
        assert!(Instant::now() < deadline, "the shell did not quit\n{}", shell.log_tail());
        std::thread::sleep(Duration::from_millis(50));
    }
    for p in all {
        assert!(!alive(p), "process {p} outlived the shell");
    }
}

pub(crate) fn parent_of(pid: u64) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split_whitespace().nth(1).unwrap().parse().unwrap()
}

pub(crate) fn wait_gone(pids: &[u64], limit: Duration) -> Duration {
    let start = Instant::now();
    while pids.iter().any(|p| alive(*p)) {
        assert!(
            start.elapsed() < limit,
            "still alive after {limit:?}: {:?}",
            pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

#[test]
fn app_hosts_never_outlive_a_frozen_or_killed_shell() {
    let shell = Shell::start_with(2048, &[("TESSERA_SHELL_TIMEOUT_MS", "2000")]);
    shell.wait_for("three apps running", Duration::from_secs(90), |apps| {
        apps.len() == 3 && apps.iter().all(running_with_page)
    });
    let tree = |apps: &[Value]| -> Vec<u64> {
        apps.iter()
            .flat_map(|a| {
                let mut v = vec![pid(a)];
                v.extend(a["web_pids"].as_array().into_iter().flatten().filter_map(Value::as_u64));
                v
            })
            .collect()
    };
    let before = tree(&shell.apps());
    let tessera = parent_of(before[0]);
    assert!(std::fs::read_to_string(format!("/proc/{tessera}/comm")).unwrap().starts_with("tessera"));

    // Frozen: the hosts stop hearing from the shell and leave on their own.
    assert!(Command::new("kill").args(["-STOP", &tessera.to_string()]).status().unwrap().success());
    let took = wait_gone(&before, Duration::from_secs(10));
    eprintln!("hosts and web processes left a frozen shell after {took:?}");
    // Thawed: the shell sees its hosts gone and starts them again.
    assert!(Command::new("kill").args(["-CONT", &tessera.to_string()]).status().unwrap().success());
    shell.wait_for("three apps back", Duration::from_secs(60), |apps| {
        apps.len() == 3 && apps.iter().all(|a| running_with_page(a) && !before.contains(&pid(a)))
    });

    // Killed: the hosts see their sockets close and leave, and take WebKit with them.
    let again = tree(&shell.apps());
    assert!(Command::new("kill").args(["-9", &tessera.to_string()]).status().unwrap().success());
    let took = wait_gone(&again, Duration::from_secs(10));
    eprintln!("hosts and web processes left a killed shell after {took:?}");
}
