//! A damaged profile database (issue 17, item 4): zeros or random bytes written inside a real
//! `tessera.redb`, 1,000 times, and each command run on it. Every one ends with an exit code of
//! 0 or 1 — never a panic — an error of one line that names the file, and the read-only
//! commands leave the file exactly as they found it.

use std::path::Path;
use std::process::{Command, Output};

use tests::bin;

const DAMAGES: usize = 1000;

/// A tiny deterministic generator, so a failure can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn tessera(args: &[&str], profile: &Path, keys: &Path, runtime: &Path) -> Output {
    let mut cmd = Command::new(bin("tessera"));
    cmd.args(args).arg("--profile").arg(profile);
    if args[0] == "run" {
        // No display: a run that gets past the profile stops at the window, with exit 1.
        cmd.arg("--key-file").arg(keys).arg("--ctl-socket").arg(runtime.join("ctl.sock"));
    }
    cmd.env_remove("DISPLAY").env("TESSERA_LOG", "error").env("XDG_RUNTIME_DIR", runtime).output().unwrap()
}

#[test]
fn a_thousand_damaged_profiles_never_panic_and_reads_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    let keys = dir.path().join("keys.json");
    let runtime = dir.path().join("run");
    std::fs::create_dir(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    // A real profile: a journal of 3,000 records and an audit log of 300 entries with a vault.
    let made = Command::new(bin("tessera"))
        .args(["journal", "append", "--topic", "orders.new", "--count", "3000", "--payload", "200", "--profile"])
        .arg(&base)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let made = Command::new(bin("tessera"))
        .args(["audit", "append", "--actor", "user", "--action", "permission.decide", "--object", "camera"])
        .args(["--decision", "deny", "--count", "300", "--key-file"])
        .arg(&keys)
        .arg("--profile")
        .arg(&base)
        .env("TESSERA_LOG", "error")
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let original = std::fs::read(base.join("tessera.redb")).unwrap();

    let seed = std::env::var("DAMAGE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x7e55_e2a0_u64);
    let mut rng = Rng(seed);
    let commands: [&[&str]; 5] = [
        &["journal", "verify"],
        &["journal", "stats"],
        &["audit", "verify"],
        &["journal", "replay", "--limit", "50"],
        &["run"],
    ];
    let (mut failed, mut runs) = (0usize, 0usize);
    let mut problems = Vec::new();
    let profile = dir.path().join("p");
    for n in 0..DAMAGES {
        let mut bytes = original.clone();
        // Whole pages or a few bytes, zeros or noise, anywhere but beyond the end.
        let len = if rng.below(2) == 0 { 4096 } else { 1 + rng.below(64) as usize };
        let at = rng.below((bytes.len() - len) as u64) as usize;
        let zeros = rng.below(2) == 0;
        for b in &mut bytes[at..at + len] {
            *b = if zeros { 0 } else { rng.next() as u8 };
        }
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir(&profile).unwrap();
        std::fs::set_permissions(&profile, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let db = profile.join("tessera.redb");
        std::fs::write(&db, &bytes).unwrap();
        std::fs::create_dir(profile.join("audit")).unwrap();
        std::fs::copy(base.join("audit/public-key"), profile.join("audit/public-key")).unwrap();
        for args in commands {
            runs += 1;
            let out = tessera(args, &profile, &keys, &runtime);
            let err = String::from_utf8_lossy(&out.stderr);
            let what = format!(
                "damage {n} ({len} {} bytes at {at}), `{}`",
                if zeros { "zero" } else { "random" },
                args.join(" ")
            );
            if !matches!(out.status.code(), Some(0 | 1)) || err.contains("panicked") {
                problems.push(format!("{what}: exit {:?}: {}", out.status.code(), err.lines().next().unwrap_or("")));
                continue;
            }
            if out.status.code() == Some(1) {
                failed += 1;
                let stdout = String::from_utf8_lossy(&out.stdout);
                let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("tessera: ")).collect();
                // A verification that ran and found damage says so in its report instead.
                let reported = args.get(1) == Some(&"verify") && err.trim().is_empty() && stdout.contains("problem");
                let about_the_file = args[0] != "run" || err.contains("tessera.redb");
                if !reported
                    && about_the_file
                    && (lines.len() != 1 || (err.contains("damaged") && !err.contains(db.to_str().unwrap())))
                {
                    problems.push(format!("{what}: neither a report nor one line naming the file: {err}"));
                }
            }
            if args[0] != "run" && std::fs::read(&db).unwrap() != bytes {
                problems.push(format!("{what}: a read-only command changed the file"));
                std::fs::write(&db, &bytes).unwrap();
            }
        }
    }
    eprintln!("{DAMAGES} damaged profiles, {runs} commands, {failed} refused with an error, seed {seed:#x}");
    assert!(problems.is_empty(), "{} problems, first: {:#?}", problems.len(), &problems[..problems.len().min(10)]);
    assert!(failed > 0, "no damage was ever noticed: the test damaged nothing");
}
