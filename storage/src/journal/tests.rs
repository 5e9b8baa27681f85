use std::time::Duration;

use broker::{Broker, BrokerConfig, ManualClock, MessageOptions, Timestamp};

use super::*;

fn open(dir: &std::path::Path, cfg: JournalConfig) -> (Profile, Journal) {
    let profile = Profile::open(dir).unwrap();
    let journal = Journal::open(&profile, cfg).unwrap();
    (profile, journal)
}

const WAIT: Duration = Duration::from_secs(10);

fn durable() -> MessageOptions {
    MessageOptions::default().durable()
}

#[test]
fn durable_publishes_are_acknowledged_after_commit_and_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, journal) = open(dir.path(), JournalConfig::default());
    let b = Broker::default();
    b.attach_journal(Arc::new(journal.clone()));
    let c = b.connect(Some(broker::AppId::new("blotter")));
    let mut acks = Vec::new();
    for i in 0..100 {
        let topic = if i % 2 == 0 { "orders.new" } else { "orders.filled" };
        let p = c.publish(topic, format!("m{i}"), durable()).unwrap();
        acks.push((p.id, p.commit.unwrap()));
    }
    let seqs: Vec<u64> = acks.iter().map(|(_, a)| a.wait(WAIT).unwrap()).collect();
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>(), "journal sequence follows acceptance order");

    let all = journal.replay(1, usize::MAX).unwrap();
    assert_eq!(all.len(), 100);
    for (m, (id, _)) in all.iter().zip(&acks) {
        assert_eq!(m.envelope.id, *id);
        assert_eq!(m.envelope.sender.app, Some(broker::AppId::new("blotter")));
    }
    assert_eq!(all[3].envelope.payload.as_bytes(), b"m3");
    assert_eq!(all[3].topic_seq, 2);
    assert_eq!(journal.replay(98, 10).unwrap().len(), 3);

    let filled = journal.replay_topic("orders.filled", TopicStart::Seq(49), 10).unwrap();
    assert_eq!(filled.iter().map(|m| m.topic_seq).collect::<Vec<_>>(), [49, 50]);
    assert_eq!(filled[1].envelope.payload.as_bytes(), b"m99");
    let ts = all[50].envelope.timestamp;
    let since = journal.replay_topic("orders.new", TopicStart::Time(ts), usize::MAX).unwrap();
    assert!(since.iter().all(|m| m.envelope.timestamp >= ts));
    assert_eq!(since.first().map(|m| m.seq), Some(51));

    let stats = journal.stats().unwrap();
    assert_eq!((stats.count, stats.first_seq, stats.last_seq), (100, Some(1), Some(100)));
    assert!(stats.bytes > 100 * 40);
    assert!(stats.commits >= 1 && stats.commits <= 100);
    assert!(stats.commit_ms_p50.is_some());
    let report = journal.verify().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!((report.records, report.topics), (100, 2));
}

#[test]
fn reopening_continues_where_it_left_off() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_p, journal) = open(dir.path(), JournalConfig::default());
        let b = Broker::default();
        b.attach_journal(Arc::new(journal));
        let c = b.connect(None);
        for i in 0..10 {
            c.publish("t", i.to_string(), durable()).unwrap().commit.unwrap().wait(WAIT).unwrap();
        }
    }
    let (_p, journal) = open(dir.path(), JournalConfig::default());
    let b = Broker::default();
    b.attach_journal(Arc::new(journal.clone()));
    let c = b.connect(None);
    let seq = c.publish("t", "after", durable()).unwrap().commit.unwrap().wait(WAIT).unwrap();
    assert_eq!(seq, 11);
    let last = journal.replay(11, 1).unwrap();
    assert_eq!(last[0].topic_seq, 11, "topic sequences continue too");
    assert!(journal.verify().unwrap().is_ok());
}

#[test]
fn concurrent_publishers_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, journal) = open(dir.path(), JournalConfig::default());
    let b = Broker::default();
    b.attach_journal(Arc::new(journal.clone()));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let b = b.clone();
            std::thread::spawn(move || {
                let c = b.connect(None);
                let acks: Vec<_> = (0..500)
                    .map(|i| c.publish(&format!("t.{t}"), i.to_string(), durable()).unwrap().commit.unwrap())
                    .collect();
                acks.into_iter().map(|a| a.wait(WAIT).unwrap()).collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<u64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    all.sort_unstable();
    assert_eq!(all, (1..=2000).collect::<Vec<_>>());
    let stats = journal.stats().unwrap();
    assert!(stats.commits < 2000, "group commit: {} commits for 2000 messages", stats.commits);
    assert!(journal.verify().unwrap().is_ok());
}

fn wait_until(mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < WAIT, "condition not reached in time");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn retention_trims_by_size_and_age() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = JournalConfig { retention_bytes: 20_000, retention_step: 50, ..JournalConfig::default() };
    let (_p, journal) = open(dir.path(), cfg);
    let b = Broker::default();
    b.attach_journal(Arc::new(journal.clone()));
    let c = b.connect(None);
    for i in 0..400 {
        c.publish("t", vec![i as u8; 200], durable()).unwrap().commit.unwrap().wait(WAIT).unwrap();
    }
    wait_until(|| journal.stats().unwrap().bytes <= 20_000);
    let stats = journal.stats().unwrap();
    assert_eq!(stats.last_seq, Some(400), "the newest stay");
    assert!(stats.first_seq.unwrap() > 1);
    assert!(journal.verify().unwrap().is_ok());

    // Age: messages stamped eight days ago go, fresh ones stay.
    let dir = tempfile::tempdir().unwrap();
    let (_p, journal) = open(dir.path(), JournalConfig::default());
    let eight_days_ago = Timestamp(now_us() - 8 * 24 * 3600 * 1_000_000);
    let old = Broker::with_clock(BrokerConfig::default(), Arc::new(ManualClock::new(eight_days_ago)));
    old.attach_journal(Arc::new(journal.clone()));
    let c = old.connect(None);
    for _ in 0..5 {
        c.publish("old", "x", durable()).unwrap().commit.unwrap().wait(WAIT).unwrap();
    }
    let fresh = Broker::default();
    fresh.attach_journal(Arc::new(journal.clone()));
    let c2 = fresh.connect(None);
    std::thread::sleep(Duration::from_millis(1100));
    c2.publish("new", "y", durable()).unwrap().commit.unwrap().wait(WAIT).unwrap();
    wait_until(|| journal.stats().unwrap().count == 1);
    assert_eq!(journal.replay(0, 10).unwrap()[0].envelope.topic.as_str(), "new");
    assert!(journal.verify().unwrap().is_ok());
}

#[test]
fn a_second_process_view_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let _p = Profile::open(dir.path()).unwrap();
    let err = Profile::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::InUse { .. }), "{err}");
    assert!(err.to_string().contains("tessera.redb"), "{err}");
}

#[test]
fn a_damaged_file_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(crate::profile::DATABASE_FILE);
    let garbage = vec![0xA5u8; 8192];
    std::fs::write(&path, &garbage).unwrap();
    let err = Profile::open(dir.path()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("tessera.redb"), "{text}");
    assert!(matches!(err, Error::Corrupt { .. } | Error::Database { .. }), "{err:?}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage, "nothing was changed");
}

#[test]
fn a_message_that_cannot_be_stored_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, journal) = open(dir.path(), JournalConfig::default());
    let b = Broker::new(BrokerConfig { max_payload_bytes: 64 << 20, ..BrokerConfig::default() });
    b.attach_journal(Arc::new(journal.clone()));
    let c = b.connect(None);
    let big = c.publish("t", vec![0u8; crate::record::MAX_PAYLOAD_BYTES + 1], durable()).unwrap();
    let err = big.commit.unwrap().wait(WAIT).unwrap_err();
    assert!(err.to_string().contains("cannot be journalled"), "{err}");
    // The journal goes on.
    let ok = c.publish("t", "small", durable()).unwrap();
    assert_eq!(ok.commit.unwrap().wait(WAIT), Ok(1));
    assert!(journal.stats().unwrap().stopped.is_none());
}

#[test]
fn records_linger_for_company_and_anything_awaited_takes_them_along() {
    let dir = tempfile::tempdir().unwrap();
    // A linger long enough that only the triggers under test can end it.
    let cfg = JournalConfig { lazy_linger: Duration::from_secs(30), ..JournalConfig::default() };
    let (_p, journal) = open(dir.path(), cfg);
    let b = Broker::default();
    b.attach_journal(Arc::new(journal.clone()));
    let records: Vec<_> = (0..50).map(|i| b.record("$shell.r", i.to_string(), None).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    assert!(records[0].try_wait().is_none(), "records wait for company");
    assert_eq!(journal.stats().unwrap().count, 0);
    // A durable publish is awaited: it commits at once, and the records before it with it.
    let c = b.connect(None);
    let seq = c.publish("t", "now", durable()).unwrap().commit.unwrap().wait(WAIT).unwrap();
    assert_eq!(seq, 51);
    let seqs: Vec<u64> = records.iter().map(|a| a.wait(WAIT).unwrap()).collect();
    assert_eq!(seqs, (1..=50).collect::<Vec<_>>(), "in the order they were made");
    assert_eq!(journal.stats().unwrap().commits, 1);

    // A flush commits what lingers; so does closing the journal.
    let more = b.record("$shell.r", "flushed", None).unwrap();
    b.flush_journal(WAIT).unwrap();
    assert_eq!(more.try_wait(), Some(Ok(52)));
    let last = b.record("$shell.r", "closed", None).unwrap();
    drop((c, b, journal));
    assert_eq!(last.wait(WAIT), Ok(53));
    let (_p2, journal) = {
        drop(_p);
        open(dir.path(), JournalConfig::default())
    };
    let kept = journal.replay_topic("$shell.r", TopicStart::Seq(1), usize::MAX).unwrap();
    assert_eq!(kept.len(), 52);
    assert_eq!(kept.last().unwrap().envelope.payload.as_bytes(), b"closed");
}

#[test]
fn records_alone_commit_after_the_linger() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = JournalConfig { lazy_linger: Duration::from_millis(50), ..JournalConfig::default() };
    let (_p, journal) = open(dir.path(), cfg);
    let b = Broker::default();
    b.attach_journal(Arc::new(journal.clone()));
    let acks: Vec<_> = (0..200).map(|i| b.record("$shell.r", i.to_string(), None).unwrap()).collect();
    for a in &acks {
        a.wait(WAIT).unwrap();
    }
    let stats = journal.stats().unwrap();
    assert!(stats.commits <= 3, "{} commits for 200 records", stats.commits);
}
