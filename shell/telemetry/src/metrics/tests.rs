use super::*;

fn snapshot() -> Snapshot {
    Snapshot {
        info: vec![("version", "0.1.0".into()), ("manifest", "7".into())],
        config_stale: vec![("manifest", false), ("policy", true)],
        shell_memory_bytes: Some(1 << 20),
        families: vec![FamilySample {
            family: "prices".into(),
            published: 10,
            delivered: 40,
            dropped: 1,
            dead_lettered: 2,
        }],
        broker: BrokerSample {
            clients: 3,
            routing: histogram_from_ns(&[1_000, 10_000], &[5, 3, 1], 40_000),
            ..BrokerSample::default()
        },
        journal: Some(JournalSample { records: 5, commit_p50: Some(0.002), ..JournalSample::default() }),
        audit_recording: true,
        apps: vec![AppSample {
            app: "news".into(),
            instance: 2,
            state: "running".into(),
            restarts: 1,
            memory_bytes: Some(4096),
            ..AppSample::default()
        }],
        frames: Some(FrameSample { frames: 9, p50: 0.004, p99: 0.008 }),
        update_staged: Some(false),
        link: Some(LinkSample { connected: true, pending: vec![("desk-a".into(), 3)], ..LinkSample::default() }),
        traces: Some(crate::trace::TraceCounts { exported: 12, dropped: 1, failed: 2 }),
    }
}

#[test]
fn the_exposition_names_every_part_and_ends_as_openmetrics_does() {
    let counters = Counters::default();
    counters.decision("news", "allow", "manifest");
    counters.decision("news", "allow", "manifest");
    counters.prompt("news", "denied");
    counters.fdc3_request("broadcastRequest");
    counters.fdc3_error("raiseIntentRequest", "NoAppsFound");
    let text = encode(&counters, snapshot()).unwrap();
    let at = |name: &str, labels: &[(&str, &str)]| sample(&text, &series(name, labels));
    assert_eq!(
        at("tessera_permission_decisions_total", &[("app", "news"), ("decision", "allow"), ("source", "manifest")]),
        Some(2.0)
    );
    assert_eq!(at("tessera_permission_prompts_total", &[("app", "news"), ("outcome", "denied")]), Some(1.0));
    assert_eq!(at("tessera_fdc3_requests_total", &[("type", "broadcastRequest")]), Some(1.0));
    assert_eq!(at("tessera_fdc3_errors_total", &[("type", "raiseIntentRequest"), ("error", "NoAppsFound")]), Some(1.0));
    assert_eq!(at("tessera_messages_published_total", &[("family", "prices")]), Some(10.0));
    assert_eq!(at("tessera_messages_dead_lettered_total", &[("family", "prices")]), Some(2.0));
    assert_eq!(at("tessera_broker_clients", &[]), Some(3.0));
    // Cumulative buckets, +Inf holding every observation, and the sum in seconds.
    assert_eq!(at("tessera_routing_seconds_bucket", &[("le", "0.000001")]), Some(5.0), "{text}");
    assert_eq!(at("tessera_routing_seconds_bucket", &[("le", "0.00001")]), Some(8.0));
    assert_eq!(at("tessera_routing_seconds_bucket", &[("le", "+Inf")]), Some(9.0));
    assert_eq!(at("tessera_routing_seconds_count", &[]), Some(9.0));
    assert_eq!(at("tessera_app_state", &[("app", "news"), ("instance", "2"), ("state", "running")]), Some(1.0));
    assert_eq!(at("tessera_app_state", &[("app", "news"), ("instance", "2"), ("state", "failed")]), Some(0.0));
    assert_eq!(at("tessera_app_restarts_total", &[("app", "news"), ("instance", "2")]), Some(1.0));
    assert_eq!(at("tessera_app_memory_bytes", &[("app", "news"), ("instance", "2")]), Some(4096.0));
    assert_eq!(at("tessera_journal_records", &[]), Some(5.0));
    assert_eq!(at("tessera_journal_commit_p50_seconds", &[]), Some(0.002));
    assert_eq!(at("tessera_audit_recording", &[]), Some(1.0));
    assert_eq!(at("tessera_link_pending", &[("group", "desk-a")]), Some(3.0));
    assert_eq!(at("tessera_config_stale", &[("document", "policy")]), Some(1.0));
    assert_eq!(at("tessera_config_stale", &[("document", "manifest")]), Some(0.0));
    assert_eq!(at("tessera_trace_spans_total", &[("outcome", "exported")]), Some(12.0));
    assert_eq!(at("tessera_trace_spans_total", &[("outcome", "failed")]), Some(2.0));
    assert_eq!(at("tessera_build_info", &[("version", "0.1.0"), ("manifest", "7")]), Some(1.0));
    assert!(text.contains("# TYPE tessera_routing_seconds histogram"));
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn an_empty_desk_still_encodes() {
    let text = encode(&Counters::default(), Snapshot::default()).unwrap();
    assert!(text.ends_with("# EOF\n"));
    assert_eq!(sample(&text, "tessera_audit_recording"), Some(0.0));
}
