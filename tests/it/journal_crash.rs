//! Crash test: `tessera journal append` killed with SIGKILL at random moments must never lose
//! an acknowledged message, leave a gap, or duplicate one. `TESSERA_CRASH_ITERATIONS` sets the
//! number of kills (default 20; the long mode is 500).

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::{bin, tessera};

/// xorshift64*, seeded from the clock; the seed is printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

fn replay_all(profile: &str) -> Vec<Value> {
    let o = tessera(&["journal", "replay", "--profile", profile, "--json"]);
    assert!(o.status.success(), "replay failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn sigkill_never_loses_an_acknowledged_message() {
    let iterations: u64 = std::env::var("TESSERA_CRASH_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let seed = std::env::var("TESSERA_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    eprintln!("crash test: {iterations} kills, TESSERA_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile").to_str().unwrap().to_owned();
    let keys = dir.path().join("vault.keys").to_str().unwrap().to_owned();
    let mut acked: Vec<u64> = Vec::new();
    for round in 0..iterations {
        let mut child = Command::new(bin("tessera"))
            .args(["journal", "append", "--profile", &profile, "--topic", "crash.test", "--count", "100000000"])
            .args(["--payload", "64", "--audit-key-file", &keys])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                seen.push(line.trim().parse::<u64>().unwrap());
            }
            seen
        });
        let delay = Duration::from_millis(30 + rng.below(400));
        let start = Instant::now();
        std::thread::sleep(delay);
        // SIGKILL: no chance to flush or clean up.
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "round {round}: append finished before the kill");
        let seen = reader.join().unwrap();
        if let (Some(first), Some(last)) = (seen.first(), acked.last()) {
            // Messages committed after the last printed ack are on disk too, unacknowledged.
            assert!(*first > *last, "round {round}: sequences go on across restarts ({first} after {last})");
        }
        acked.extend(seen);
        eprintln!("round {round}: killed after {:?}, {} acknowledged so far", start.elapsed(), acked.len());
    }
    assert!(acked.len() as u64 > iterations, "the appender acknowledged almost nothing");

    // The audit entries written alongside (one per 1000 acks, a signed head every 5 entries)
    // verify against every head signed before a kill.
    let audit = tessera(&["audit", "verify", "--profile", &profile, "--json"]);
    let audit_report: Value = serde_json::from_slice(&audit.stdout).unwrap();
    assert!(audit.status.success(), "audit verify: {audit_report}");
    assert!(audit_report["heads_checked"].as_u64().unwrap() > 0, "no signed head to check: {audit_report}");
    eprintln!("audit: {audit_report}");

    let verify = tessera(&["journal", "verify", "--profile", &profile, "--json"]);
    let report: Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert!(verify.status.success(), "journal verify: {report}");

    let records = replay_all(&profile);
    let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "no gaps");
    let present: HashSet<u64> = seqs.iter().copied().collect();
    let missing: Vec<&u64> = acked.iter().filter(|s| !present.contains(s)).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    // Nothing is sent twice: message ids are unique (each run has its own id epoch).
    let ids: HashSet<&str> = records.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), records.len(), "duplicate message ids");
    let topic_seqs: Vec<u64> = records.iter().map(|r| r["topic_seq"].as_u64().unwrap()).collect();
    assert_eq!(topic_seqs, seqs, "one topic: topic sequences follow journal sequences");
}
