use serde_json::{Value, json};

use super::*;

const DIR: &str = r#"{"applications": [
  {"appId": "chart", "title": "Chart", "type": "web", "details": {"url": "https://chart.example/"},
   "interop": {"intents": {"listensFor": {"ViewChart": {"displayName": "View Chart", "contexts": ["fdc3.instrument"]}}}}},
  {"appId": "chart2", "title": "Chart Two", "type": "web", "details": {"url": "https://chart2.example/"},
   "interop": {"intents": {"listensFor": {"ViewChart": {"contexts": ["fdc3.instrument"]}}}}},
  {"appId": "ticket", "title": "Ticket", "type": "web", "details": {"url": "https://ticket.example/"},
   "interop": {"intents": {"listensFor": {"StartOrder": {"contexts": ["fdc3.instrument"], "resultType": "fdc3.order"}}}}},
  {"appId": "news", "title": "News", "type": "web", "details": {"url": "https://news.example/"}}
]}"#;

fn agent() -> Agent {
    let (records, problems) = Directory::parse(DIR).expect("directory");
    assert!(problems.is_empty(), "{problems:?}");
    let mut d = Directory::new();
    for r in records {
        d.insert(r);
    }
    Agent::new(d, 7, "0.1.0")
}

static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[allow(clippy::needless_pass_by_value, reason = "the call sites read better with json! in place")]
fn ask(a: &mut Agent, from: u64, app: &str, kind: &str, payload: Value) -> (String, Vec<Output>) {
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let uuid = format!("req-{from}-{n}");
    let msg = json!({ "type": kind, "payload": payload, "meta": { "requestUuid": uuid, "timestamp": "2026-01-01T00:00:00Z" } });
    let out = a.handle(from, app, &msg.to_string(), 1_000).expect("handled");
    (uuid, out)
}

fn sent(out: &[Output], to: u64) -> Vec<&Value> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { to: t, message } if *t == to => Some(message),
            _ => None,
        })
        .collect()
}

/// The answer to `uuid` in `out`.
fn answer<'a>(out: &'a [Output], to: u64, uuid: &str) -> &'a Value {
    sent(out, to)
        .into_iter()
        .find(|m| m["meta"]["requestUuid"] == uuid)
        .unwrap_or_else(|| panic!("no answer to {uuid} in {out:#?}"))
}

fn instrument(ticker: &str) -> Value {
    json!({ "type": "fdc3.instrument", "id": { "ticker": ticker } })
}

#[test]
fn the_directory_reports_bad_records_by_app_and_field_and_keeps_the_rest() {
    let text = r#"[
      {"appId": "ok", "title": "OK", "type": "web", "details": {"url": "https://ok.example/"}},
      {"appId": "nourl", "title": "No URL", "type": "web", "details": {}},
      {"appId": "badintent", "title": "B", "type": "web", "details": {"url": "https://b.example/"},
       "interop": {"intents": {"listensFor": {"ViewChart": {"contexts": "fdc3.instrument"}}}}},
      {"title": "no id", "type": "web"},
      {"appId": "ok", "title": "Again", "type": "web", "details": {"url": "https://ok.example/"}},
      {"appId": "ftp", "title": "F", "type": "web", "details": {"url": "ftp://f.example/"}},
      {"appId": "weird", "title": "W", "type": "mainframe"},
      {"appId": "native", "title": "N", "type": "native"}
    ]"#;
    let (good, problems) = Directory::parse(text).expect("parsed");
    let ids: Vec<&str> = good.iter().map(|r| r.app_id.as_str()).collect();
    assert_eq!(ids, ["ok", "native"]);
    let said: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(said.len(), 6, "{said:#?}");
    assert!(said[0].contains("\"nourl\"") && said[0].contains("details.url: is missing"), "{}", said[0]);
    assert!(said[1].contains("interop.intents.listensFor.ViewChart.contexts: is not a list"), "{}", said[1]);
    assert!(said[2].starts_with("record 3: appId: is missing"), "{}", said[2]);
    assert!(said[3].contains("appears earlier"), "{}", said[3]);
    assert!(said[4].contains("not an http or https URL"), "{}", said[4]);
    assert!(said[5].contains("\"mainframe\""), "{}", said[5]);
    assert!(matches!(Directory::parse("{"), Err(DirectoryError::NotJson(_))));
    assert_eq!(Directory::parse("{\"apps\": []}"), Err(DirectoryError::Shape));
}

#[test]
fn broadcasts_reach_listeners_on_the_same_user_channel_only() {
    let mut a = agent();
    for (i, app) in [(1, "chart"), (2, "news"), (3, "ticket")] {
        a.add_instance(i, app);
    }
    let (_, _) = ask(&mut a, 1, "chart", "joinUserChannelRequest", json!({ "channelId": "fdc3.channel.1" }));
    let (_, _) = ask(&mut a, 2, "news", "joinUserChannelRequest", json!({ "channelId": "fdc3.channel.1" }));
    let (_, _) = ask(&mut a, 3, "ticket", "joinUserChannelRequest", json!({ "channelId": "fdc3.channel.2" }));
    for (i, app, t) in [(2, "news", Value::Null), (3, "ticket", Value::Null), (1, "chart", json!("fdc3.contact"))] {
        let (u, out) = ask(&mut a, i, app, "addContextListenerRequest", json!({ "channelId": null, "contextType": t }));
        assert!(answer(&out, i, &u)["payload"]["listenerUUID"].is_string());
    }
    let (u, out) = ask(
        &mut a,
        1,
        "chart",
        "broadcastRequest",
        json!({ "channelId": "fdc3.channel.1", "context": instrument("AAPL") }),
    );
    assert_eq!(answer(&out, 1, &u)["type"], "broadcastResponse");
    let news = sent(&out, 2);
    assert_eq!(news.len(), 1);
    assert_eq!(news[0]["type"], "broadcastEvent");
    assert_eq!(news[0]["payload"]["context"]["id"]["ticker"], "AAPL");
    assert_eq!(news[0]["payload"]["originatingApp"], json!({ "appId": "chart", "instanceId": "1" }));
    assert!(news[0]["meta"]["eventUuid"].is_string());
    assert!(sent(&out, 3).is_empty(), "another channel");
    assert!(out.iter().any(|o| matches!(o, Output::Record { topic, .. } if *topic == BROADCAST_RECORDS)));
    // The sender's own contact listener does not hear an instrument, nor its own broadcast.
    let (_, out) = ask(
        &mut a,
        2,
        "news",
        "broadcastRequest",
        json!({ "channelId": "fdc3.channel.1", "context": instrument("MSFT") }),
    );
    assert!(sent(&out, 1).is_empty(), "chart listens for contacts only");
    let (u, out) = ask(
        &mut a,
        3,
        "ticket",
        "getCurrentContextRequest",
        json!({ "channelId": "fdc3.channel.1", "contextType": "fdc3.instrument" }),
    );
    assert_eq!(answer(&out, 3, &u)["payload"]["context"]["id"]["ticker"], "MSFT");
    let (u, out) = ask(
        &mut a,
        3,
        "ticket",
        "getCurrentContextRequest",
        json!({ "channelId": "fdc3.channel.1", "contextType": "fdc3.contact" }),
    );
    assert_eq!(answer(&out, 3, &u)["payload"]["context"], Value::Null);
}

#[test]
fn malformed_context_and_unknown_channels_get_the_standard_errors() {
    let mut a = agent();
    a.add_instance(1, "chart");
    let (u, out) =
        ask(&mut a, 1, "chart", "broadcastRequest", json!({ "channelId": "fdc3.channel.1", "context": { "id": 1 } }));
    assert_eq!(answer(&out, 1, &u)["payload"]["error"], "MalformedContext");
    let (u, out) = ask(&mut a, 1, "chart", "joinUserChannelRequest", json!({ "channelId": "nope" }));
    assert_eq!(answer(&out, 1, &u)["payload"]["error"], "NoChannelFound");
    let (u, out) = ask(&mut a, 1, "chart", "getOrCreateChannelRequest", json!({ "channelId": "fdc3.channel.3" }));
    assert_eq!(answer(&out, 1, &u)["payload"]["error"], "CreationFailed");
    let (u, out) = ask(&mut a, 1, "chart", "raiseIntentRequest", json!({ "intent": "ViewChart", "context": "x" }));
    assert_eq!(answer(&out, 1, &u)["payload"]["error"], "MalformedContext");
    let (u, out) = ask(&mut a, 1, "chart", "openRequest", json!({ "app": { "appId": "missing" } }));
    assert_eq!(answer(&out, 1, &u)["payload"]["error"], "AppNotFound");
    assert!(matches!(a.handle(1, "chart", "{\"type\": 3}", 0), Err(Fdc3Error::Malformed(_))));
    assert!(matches!(a.handle(1, "chart", "[]", 0), Err(Fdc3Error::Malformed(_))));
    let weird = json!({ "type": "rmRfRequest", "payload": {}, "meta": { "requestUuid": "x" } }).to_string();
    assert_eq!(a.handle(1, "chart", &weird, 0), Err(Fdc3Error::UnknownType("rmRfRequest".into())));
}

#[test]
fn the_window_changes_an_instances_channel_and_the_app_hears_it() {
    let mut a = agent();
    a.add_instance(4, "news");
    let out = a.set_channel(4, Some("fdc3.channel.3"), 5);
    let events = sent(&out, 4);
    assert_eq!(events[0]["type"], "channelChangedEvent");
    assert_eq!(events[0]["payload"]["currentChannelId"], "fdc3.channel.3");
    assert!(out.contains(&Output::ChannelChanged { instance: 4, channel: Some("fdc3.channel.3".into()) }));
    let (u, out) = ask(&mut a, 4, "news", "getCurrentChannelRequest", json!({}));
    let ch = &answer(&out, 4, &u)["payload"]["channel"];
    assert_eq!(ch["id"], "fdc3.channel.3");
    assert_eq!(ch["displayMetadata"]["color"], "yellow");
    assert!(a.set_channel(4, Some("private.x"), 6).is_empty(), "not a user channel");
    let (u, out) = ask(&mut a, 4, "news", "leaveCurrentChannelRequest", json!({}));
    assert_eq!(answer(&out, 4, &u)["type"], "leaveCurrentChannelResponse");
    assert!(out.contains(&Output::ChannelChanged { instance: 4, channel: None }));
}

#[test]
fn private_channels_are_isolated_and_announce_listeners_and_disconnects() {
    let mut a = agent();
    a.add_instance(1, "ticket");
    a.add_instance(2, "chart");
    a.add_instance(3, "news");
    // chart raises StartOrder; ticket answers with a private channel.
    let (_, _) = ask(&mut a, 1, "ticket", "addIntentListenerRequest", json!({ "intent": "StartOrder" }));
    let (raise, out) =
        ask(&mut a, 2, "chart", "raiseIntentRequest", json!({ "intent": "StartOrder", "context": instrument("IBM") }));
    let event = sent(&out, 1)[0].clone();
    assert_eq!(event["type"], "intentEvent");
    let resolution = answer(&out, 2, &raise);
    assert_eq!(resolution["payload"]["intentResolution"]["source"]["appId"], "ticket");
    let (u, out) = ask(&mut a, 1, "ticket", "createPrivateChannelRequest", json!({}));
    let id = answer(&out, 1, &u)["payload"]["privateChannel"]["id"].as_str().expect("id").to_owned();
    // Nobody else can reach it by id.
    let (u, out) = ask(&mut a, 3, "news", "getOrCreateChannelRequest", json!({ "channelId": id }));
    assert_eq!(answer(&out, 3, &u)["payload"]["error"], "AccessDenied");
    let (u, out) = ask(&mut a, 3, "news", "addContextListenerRequest", json!({ "channelId": id, "contextType": null }));
    assert_eq!(answer(&out, 3, &u)["payload"]["error"], "AccessDenied");
    let (u, out) = ask(&mut a, 3, "news", "broadcastRequest", json!({ "channelId": id, "context": instrument("X") }));
    assert_eq!(answer(&out, 3, &u)["payload"]["error"], "AccessDenied");
    // The ticket listens for the chart adding a listener.
    let (_, _) = ask(
        &mut a,
        1,
        "ticket",
        "privateChannelAddEventListenerRequest",
        json!({ "privateChannelId": id, "listenerType": "addContextListener" }),
    );
    let (_, _) = ask(
        &mut a,
        1,
        "ticket",
        "privateChannelAddEventListenerRequest",
        json!({ "privateChannelId": id, "listenerType": "disconnect" }),
    );
    let (u, out) = ask(
        &mut a,
        1,
        "ticket",
        "intentResultRequest",
        json!({
        "intentEventUuid": event["meta"]["eventUuid"], "raiseIntentRequestUuid": raise,
        "intentResult": { "channel": { "id": id, "type": "private" } } }),
    );
    assert_eq!(answer(&out, 1, &u)["type"], "intentResultResponse");
    let result = answer(&out, 2, &raise);
    assert_eq!(result["type"], "raiseIntentResultResponse");
    assert_eq!(result["payload"]["intentResult"]["channel"]["id"], id.as_str());
    // Now the chart is a member.
    let (_, out) =
        ask(&mut a, 2, "chart", "addContextListenerRequest", json!({ "channelId": id, "contextType": "fdc3.order" }));
    let ev = sent(&out, 1);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["type"], "privateChannelOnAddContextListenerEvent");
    assert_eq!(ev[0]["payload"]["contextType"], "fdc3.order");
    let (_, out) = ask(
        &mut a,
        1,
        "ticket",
        "broadcastRequest",
        json!({ "channelId": id, "context": { "type": "fdc3.order", "id": { "o": 1 } } }),
    );
    assert_eq!(sent(&out, 2).len(), 1);
    assert!(sent(&out, 3).is_empty());
    // The chart disconnects: the ticket hears the unsubscribe (it does not listen for those) and the disconnect.
    let (_, out) = ask(&mut a, 2, "chart", "privateChannelDisconnectRequest", json!({ "channelId": id }));
    let ev: Vec<&str> = sent(&out, 1).iter().filter_map(|m| m["type"].as_str()).collect();
    assert_eq!(ev, ["privateChannelOnDisconnectEvent"]);
    let (u, out) = ask(&mut a, 2, "chart", "broadcastRequest", json!({ "channelId": id, "context": instrument("Y") }));
    assert_eq!(answer(&out, 2, &u)["payload"]["error"], "AccessDenied");
}

#[test]
fn a_second_listener_for_an_intent_conflicts() {
    let mut a = agent();
    a.add_instance(1, "chart");
    let (_, _) = ask(&mut a, 1, "chart", "addIntentListenerRequest", json!({ "intent": "ViewChart" }));
    let (u, out) = ask(&mut a, 1, "chart", "addIntentListenerRequest", json!({ "intent": "ViewChart" }));
    assert_eq!(answer(&out, 1, &u)["payload"]["error"], "IntentListenerConflict");
}

#[test]
fn several_targets_ask_the_resolver_and_the_answer_launches_and_waits_for_the_listener() {
    let mut a = agent();
    a.add_instance(9, "news");
    let (u, out) =
        ask(&mut a, 9, "news", "raiseIntentRequest", json!({ "intent": "ViewChart", "context": instrument("AAPL") }));
    let Some(Output::Resolve { resolve, intent, choices, .. }) =
        out.iter().find(|o| matches!(o, Output::Resolve { .. }))
    else {
        panic!("no resolver in {out:#?}")
    };
    assert_eq!(intent.as_deref(), Some("ViewChart"));
    let apps: Vec<&str> = choices.iter().map(|c| c.app.as_str()).collect();
    assert_eq!(apps, ["chart", "chart2"]);
    let out = a.resolved(*resolve, Some(1), 2_000);
    let Some(Output::Launch { launch, app }) = out.first() else { panic!("{out:#?}") };
    assert_eq!(app, "chart2");
    assert!(a.launched(*launch, Some(20), 2_100).is_empty(), "it waits for the listener");
    assert_eq!(a.pending().listeners, 1);
    // Its page starting to load does not end the wait.
    assert!(a.reset_instance(20, 2_200).is_empty());
    assert_eq!(a.pending().listeners, 1);
    let (l, out) = ask(&mut a, 20, "chart2", "addIntentListenerRequest", json!({ "intent": "ViewChart" }));
    // The listener's answer first, then the intent.
    let to_chart = sent(&out, 20);
    assert_eq!(to_chart[0]["meta"]["requestUuid"], l);
    assert_eq!(to_chart[1]["type"], "intentEvent");
    assert_eq!(to_chart[1]["payload"]["raiseIntentRequestUuid"], u);
    assert_eq!(answer(&out, 9, &u)["payload"]["intentResolution"]["source"]["instanceId"], "20");
    // A cancelled question is the standard's error.
    let (u, out) = ask(&mut a, 9, "news", "raiseIntentForContextRequest", json!({ "context": instrument("AAPL") }));
    let Some(Output::Resolve { resolve, choices, .. }) = out.iter().find(|o| matches!(o, Output::Resolve { .. }))
    else {
        panic!("{out:#?}")
    };
    assert!(choices.iter().any(|c| c.instance == Some(20)), "the running instance is offered");
    assert!(choices.iter().any(|c| c.intent == "StartOrder"));
    let out = a.resolved(*resolve, None, 3_000);
    assert_eq!(answer(&out, 9, &u)["payload"]["error"], "UserCancelledResolution");
}

#[test]
fn a_launched_app_that_never_listens_fails_the_raise_after_the_timeout() {
    let mut a = agent();
    a.add_instance(1, "news");
    let (u, out) = ask(
        &mut a,
        1,
        "news",
        "raiseIntentRequest",
        json!({ "intent": "StartOrder", "context": instrument("A"), "app": { "appId": "ticket" } }),
    );
    let Some(Output::Launch { launch, .. }) = out.first() else { panic!("{out:#?}") };
    a.launched(*launch, Some(2), 1_000);
    assert!(a.sweep(1_000 + LISTENER_TIMEOUT_MS - 1).is_empty());
    let out = a.sweep(1_000 + LISTENER_TIMEOUT_MS);
    assert_eq!(answer(&out, 1, &u)["payload"]["error"], "IntentDeliveryFailed");
    let (u, out) = ask(
        &mut a,
        1,
        "news",
        "raiseIntentRequest",
        json!({ "intent": "StartOrder", "context": instrument("A"), "app": { "appId": "ticket", "instanceId": "99" } }),
    );
    assert_eq!(answer(&out, 1, &u)["payload"]["error"], "TargetInstanceUnavailable");
    let (u, out) = ask(
        &mut a,
        1,
        "news",
        "raiseIntentRequest",
        json!({ "intent": "StartOrder", "context": instrument("A"), "app": { "appId": "nobody" } }),
    );
    assert_eq!(answer(&out, 1, &u)["payload"]["error"], "TargetAppUnavailable");
    let (u, out) =
        ask(&mut a, 1, "news", "raiseIntentRequest", json!({ "intent": "Nothing", "context": instrument("A") }));
    assert_eq!(answer(&out, 1, &u)["payload"]["error"], "NoAppsFound");
}

#[test]
fn results_come_only_from_the_target_and_a_rejected_handler_is_reported() {
    let mut a = agent();
    a.add_instance(1, "ticket");
    a.add_instance(2, "news");
    a.add_instance(3, "chart");
    let (_, _) = ask(&mut a, 1, "ticket", "addIntentListenerRequest", json!({ "intent": "StartOrder" }));
    let (raise, out) =
        ask(&mut a, 2, "news", "raiseIntentRequest", json!({ "intent": "StartOrder", "context": instrument("A") }));
    let event = sent(&out, 1)[0]["meta"]["eventUuid"].clone();
    // Another instance forging the answer is refused.
    let (u, out) = ask(
        &mut a,
        3,
        "chart",
        "intentResultRequest",
        json!({ "intentEventUuid": event, "raiseIntentRequestUuid": raise, "intentResult": { "context": { "type": "fdc3.order" } } }),
    );
    assert_eq!(answer(&out, 3, &u)["payload"]["error"], "InvalidArguments");
    assert!(sent(&out, 2).is_empty());
    let (_, out) = ask(
        &mut a,
        1,
        "ticket",
        "intentResultRequest",
        json!({ "intentEventUuid": event, "raiseIntentRequestUuid": raise, "intentResult": {}, "error": "rejected" }),
    );
    assert_eq!(answer(&out, 2, &raise)["payload"]["error"], "IntentHandlerRejected");
    // A target closing before answering.
    let (raise, out) =
        ask(&mut a, 2, "news", "raiseIntentRequest", json!({ "intent": "StartOrder", "context": instrument("B") }));
    assert_eq!(sent(&out, 1)[0]["type"], "intentEvent");
    let out = a.remove_instance(1, 9_000);
    let r = answer(&out, 2, &raise);
    assert_eq!(r["type"], "raiseIntentResultResponse");
    assert_eq!(r["payload"]["error"], "NoResultReturned");
    let (u, out) = ask(&mut a, 2, "news", "findInstancesRequest", json!({ "app": { "appId": "ticket" } }));
    assert_eq!(answer(&out, 2, &u)["payload"]["appIdentifiers"], json!([]));
}

#[test]
fn open_delivers_its_context_to_the_first_fitting_listener() {
    let mut a = agent();
    a.add_instance(1, "news");
    let (u, out) =
        ask(&mut a, 1, "news", "openRequest", json!({ "app": { "appId": "chart" }, "context": instrument("TSLA") }));
    let Some(Output::Launch { launch, app }) = out.first() else { panic!("{out:#?}") };
    assert_eq!(app, "chart");
    assert!(a.launched(*launch, Some(5), 1_000).is_empty());
    // A listener for another type does not take it.
    let (_, out) = ask(
        &mut a,
        5,
        "chart",
        "addContextListenerRequest",
        json!({ "channelId": null, "contextType": "fdc3.contact" }),
    );
    assert!(sent(&out, 1).is_empty());
    let (_, out) =
        ask(&mut a, 5, "chart", "addContextListenerRequest", json!({ "channelId": null, "contextType": null }));
    let ev = sent(&out, 5);
    assert_eq!(ev[1]["type"], "broadcastEvent");
    assert_eq!(ev[1]["payload"]["channelId"], Value::Null);
    assert_eq!(ev[1]["payload"]["context"]["id"]["ticker"], "TSLA");
    assert_eq!(answer(&out, 1, &u)["payload"]["appIdentifier"], json!({ "appId": "chart", "instanceId": "5" }));
    // The pre-2.0 form names the app by its name.
    let (_, out) = ask(&mut a, 1, "news", "openRequest", json!({ "app": { "appId": "Chart Two" } }));
    assert!(matches!(out.first(), Some(Output::Launch { app, .. }) if app == "chart2"), "{out:#?}");
    // Without a context it answers once launched; a failed launch is ErrorOnLaunch.
    let (u, out) = ask(&mut a, 1, "news", "openRequest", json!({ "app": { "appId": "ticket" } }));
    let Some(Output::Launch { launch, .. }) = out.first() else { panic!() };
    let out = a.launched(*launch, None, 1_000);
    assert_eq!(answer(&out, 1, &u)["payload"]["error"], "ErrorOnLaunch");
}

#[test]
fn find_intent_and_find_intents_by_context_use_the_directory_and_live_listeners() {
    let mut a = agent();
    a.add_instance(1, "news");
    let (_, _) = ask(&mut a, 1, "news", "addIntentListenerRequest", json!({ "intent": "ViewNews" }));
    let (u, out) = ask(&mut a, 1, "news", "findIntentRequest", json!({ "intent": "ViewChart" }));
    let apps = &answer(&out, 1, &u)["payload"]["appIntent"]["apps"];
    assert_eq!(apps.as_array().map(Vec::len), Some(2));
    assert_eq!(answer(&out, 1, &u)["payload"]["appIntent"]["intent"]["displayName"], "View Chart");
    let (u, out) =
        ask(&mut a, 1, "news", "findIntentRequest", json!({ "intent": "StartOrder", "resultType": "fdc3.order" }));
    assert_eq!(answer(&out, 1, &u)["payload"]["appIntent"]["apps"][0]["appId"], "ticket");
    let (u, out) =
        ask(&mut a, 1, "news", "findIntentRequest", json!({ "intent": "StartOrder", "resultType": "fdc3.trade" }));
    assert_eq!(answer(&out, 1, &u)["payload"]["error"], "NoAppsFound");
    let (u, out) = ask(&mut a, 1, "news", "findIntentRequest", json!({ "intent": "ViewNews" }));
    assert_eq!(answer(&out, 1, &u)["payload"]["appIntent"]["apps"][0]["instanceId"], "1");
    let (u, out) = ask(&mut a, 1, "news", "findIntentsByContextRequest", json!({ "context": instrument("A") }));
    let names: Vec<&str> = answer(&out, 1, &u)["payload"]["appIntents"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|i| i["intent"]["name"].as_str())
        .collect();
    assert_eq!(names, ["StartOrder", "ViewChart", "ViewNews"]);
    let (u, out) = ask(&mut a, 1, "news", "getInfoRequest", json!({}));
    let info = &answer(&out, 1, &u)["payload"]["implementationMetadata"];
    assert_eq!(info["fdc3Version"], "2.2");
    assert_eq!(info["appMetadata"]["appId"], "news");
    assert_eq!(info["appMetadata"]["instanceId"], "1");
    let (u, out) = ask(&mut a, 1, "news", "getAppMetadataRequest", json!({ "app": { "appId": "chart" } }));
    assert_eq!(answer(&out, 1, &u)["payload"]["appMetadata"]["title"], "Chart");
    let (u, out) = ask(&mut a, 1, "news", "getAppMetadataRequest", json!({ "app": { "appId": "zzz" } }));
    assert_eq!(answer(&out, 1, &u)["payload"]["error"], "TargetAppUnavailable");
}

#[test]
fn uuids_are_unique_and_shaped_like_v4() {
    let mut a = agent();
    let ids: std::collections::HashSet<String> = (0..1000).map(|_| a.uuid()).collect();
    assert_eq!(ids.len(), 1000);
    let one = ids.iter().next().expect("one");
    assert_eq!(one.len(), 36);
    assert_eq!(&one[14..15], "4");
}

#[test]
fn deadlines_give_app_timeout_and_resolver_timeout() {
    let mut a = agent();
    a.add_instance(1, "news");
    assert!(!a.has_deadlines(), "an idle agent needs no sweeping");
    // open with a context that no listener ever takes.
    let (u, out) =
        ask(&mut a, 1, "news", "openRequest", json!({ "app": { "appId": "chart" }, "context": instrument("X") }));
    assert!(a.has_deadlines(), "the launch has one");
    let Some(Output::Launch { launch, .. }) = out.first() else { panic!("{out:#?}") };
    assert!(a.launched(*launch, Some(2), 1_000).is_empty());
    assert!(a.has_deadlines(), "the wait for a listener has one");
    let out = a.sweep(1_000 + LISTENER_TIMEOUT_MS);
    assert_eq!(answer(&out, 1, &u)["payload"]["error"], "AppTimeout");
    assert!(!a.has_deadlines());
    // A resolver question nobody answers.
    let (u, out) =
        ask(&mut a, 1, "news", "raiseIntentRequest", json!({ "intent": "ViewChart", "context": instrument("X") }));
    let Some(Output::Resolve { resolve, .. }) = out.iter().find(|o| matches!(o, Output::Resolve { .. })) else {
        panic!("{out:#?}")
    };
    let resolve = *resolve;
    assert!(a.has_deadlines(), "the question has one");
    let out = a.sweep(1_000 + RESOLVER_TIMEOUT_MS + 1);
    assert_eq!(answer(&out, 1, &u)["payload"]["error"], "ResolverTimeout");
    assert!(!a.has_deadlines());
    assert!(out.contains(&Output::CloseResolver { resolve }));
    // The raiser going away closes its question.
    let (_, out) =
        ask(&mut a, 1, "news", "raiseIntentRequest", json!({ "intent": "ViewChart", "context": instrument("Y") }));
    let Some(Output::Resolve { resolve, .. }) = out.iter().find(|o| matches!(o, Output::Resolve { .. })) else {
        panic!("{out:#?}")
    };
    let resolve = *resolve;
    let out = a.remove_instance(1, 2_000);
    assert!(out.contains(&Output::CloseResolver { resolve }));
    assert_eq!(a.pending(), Pending { launches: 0, listeners: 0, resolves: 0, results: 0 });
}

#[test]
fn open_without_a_context_answers_when_the_app_is_ready() {
    let mut a = agent();
    a.add_instance(1, "news");
    // Ready when it adds a listener...
    let (u, out) = ask(&mut a, 1, "news", "openRequest", json!({ "app": { "appId": "chart" } }));
    let Some(Output::Launch { launch, .. }) = out.first() else { panic!("{out:#?}") };
    assert!(a.launched(*launch, Some(2), 1_000).is_empty(), "not at once");
    let (_, out) = ask(&mut a, 2, "chart", "addIntentListenerRequest", json!({ "intent": "ViewChart" }));
    assert_eq!(answer(&out, 1, &u)["payload"]["appIdentifier"], json!({ "appId": "chart", "instanceId": "2" }));
    // ... or a moment after its page loaded, if it never listens.
    let (u, out) = ask(&mut a, 1, "news", "openRequest", json!({ "app": { "appId": "ticket" } }));
    let Some(Output::Launch { launch, .. }) = out.first() else { panic!("{out:#?}") };
    a.launched(*launch, Some(3), 1_000);
    a.page_loaded(3, 1_500);
    assert!(a.sweep(1_500 + OPEN_SETTLE_MS - 1).is_empty());
    let out = a.sweep(1_500 + OPEN_SETTLE_MS);
    assert_eq!(answer(&out, 1, &u)["payload"]["appIdentifier"]["instanceId"], "3");
}

#[test]
fn an_intent_raised_at_an_instance_must_fit_its_declared_contexts() {
    let mut a = agent();
    a.add_instance(1, "news");
    a.add_instance(2, "chart");
    let (_, _) = ask(&mut a, 2, "chart", "addIntentListenerRequest", json!({ "intent": "ViewChart" }));
    let target = json!({ "appId": "chart", "instanceId": "2" });
    let (u, out) = ask(
        &mut a,
        1,
        "news",
        "raiseIntentRequest",
        json!({ "intent": "ViewChart", "context": { "type": "fdc3.contact" }, "app": target }),
    );
    assert_eq!(answer(&out, 1, &u)["payload"]["error"], "NoAppsFound");
    assert!(sent(&out, 2).is_empty());
    let (u, out) = ask(
        &mut a,
        1,
        "news",
        "raiseIntentRequest",
        json!({ "intent": "ViewChart", "context": instrument("A"), "app": target }),
    );
    assert_eq!(answer(&out, 1, &u)["payload"]["intentResolution"]["source"]["instanceId"], "2");
    // AppMetadata carries only the standard's fields.
    let (u, out) = ask(&mut a, 1, "news", "getAppMetadataRequest", json!({ "app": { "appId": "chart" } }));
    let keys: Vec<String> =
        answer(&out, 1, &u)["payload"]["appMetadata"].as_object().unwrap().keys().cloned().collect();
    let allowed = [
        "appId",
        "instanceId",
        "name",
        "version",
        "instanceMetadata",
        "title",
        "tooltip",
        "description",
        "icons",
        "screenshots",
        "resultType",
    ];
    assert!(keys.iter().all(|k| allowed.contains(&k.as_str())), "{keys:?}");
}

#[test]
fn a_broadcast_from_another_desk_reaches_the_listeners_here_and_becomes_the_channels_context() {
    let mut a = agent();
    for (i, app) in [(1, "chart"), (2, "news")] {
        a.add_instance(i, app);
    }
    let (_, _) = ask(&mut a, 1, "chart", "joinUserChannelRequest", json!({ "channelId": "fdc3.channel.1" }));
    let (_, _) = ask(&mut a, 2, "news", "joinUserChannelRequest", json!({ "channelId": "fdc3.channel.2" }));
    for (i, app) in [(1, "chart"), (2, "news")] {
        let (_, _) =
            ask(&mut a, i, app, "addContextListenerRequest", json!({ "channelId": null, "contextType": null }));
    }
    let origin = json!({ "appId": "blotter", "desktopAgent": "bob" });
    let out = a.remote_broadcast("fdc3.channel.1", &instrument("IBM"), &origin, 2_000);
    let chart = sent(&out, 1);
    assert_eq!(chart.len(), 1);
    assert_eq!(chart[0]["type"], "broadcastEvent");
    assert_eq!(chart[0]["payload"]["originatingApp"], origin);
    assert!(sent(&out, 2).is_empty(), "another channel");
    assert!(out.iter().any(|o| matches!(o, Output::Record { body, .. } if body["remote"] == true)));
    let (u, out) = ask(
        &mut a,
        2,
        "news",
        "getCurrentContextRequest",
        json!({ "channelId": "fdc3.channel.1", "contextType": null }),
    );
    assert_eq!(answer(&out, 2, &u)["payload"]["context"]["id"]["ticker"], "IBM");
    // A private channel, or not a context: nothing happens.
    let (_, out) = ask(&mut a, 1, "chart", "createPrivateChannelRequest", json!({}));
    let private = sent(&out, 1)[0]["payload"]["privateChannel"]["id"].as_str().expect("id").to_owned();
    assert!(a.remote_broadcast(&private, &instrument("X"), &origin, 2_000).is_empty());
    assert!(a.remote_broadcast("fdc3.channel.1", &json!({ "id": 1 }), &origin, 2_000).is_empty());
    // An app channel is created by the first broadcast from another desk, and listeners on it
    // here hear the next.
    let out = a.remote_broadcast("desk.orders", &instrument("Y"), &origin, 2_000);
    assert!(sent(&out, 1).is_empty() && sent(&out, 2).is_empty());
    let (_, _) = ask(&mut a, 2, "news", "getOrCreateChannelRequest", json!({ "channelId": "desk.orders" }));
    let (u, out) =
        ask(&mut a, 2, "news", "getCurrentContextRequest", json!({ "channelId": "desk.orders", "contextType": null }));
    assert_eq!(answer(&out, 2, &u)["payload"]["context"]["id"]["ticker"], "Y");
    let (_, _) =
        ask(&mut a, 2, "news", "addContextListenerRequest", json!({ "channelId": "desk.orders", "contextType": null }));
    let out = a.remote_broadcast("desk.orders", &instrument("Z"), &origin, 2_000);
    assert_eq!(sent(&out, 2)[0]["payload"]["context"]["id"]["ticker"], "Z");
}

fn desk_app(app: &str, intent: &str, result: Option<&str>) -> RemoteApp {
    RemoteApp {
        app_id: app.to_owned(),
        title: format!("{app} (remote)"),
        intents: vec![IntentDecl {
            name: intent.to_owned(),
            display_name: None,
            contexts: vec!["fdc3.instrument".to_owned()],
            result_type: result.map(str::to_owned),
        }],
    }
}

fn raise_on_desk(out: &[Output]) -> &DeskRaise {
    out.iter()
        .find_map(|o| match o {
            Output::RaiseOnDesk(r) => Some(r),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no raise for another desk in {out:#?}"))
}

#[test]
fn linked_desks_apps_are_found_and_raised_with_answers_from_that_desk_only() {
    let mut a = agent();
    a.link_as("alice");
    a.add_instance(1, "news");
    a.set_desk_apps("bob", vec![desk_app("blotter", "StartOrder", Some("fdc3.order"))]);
    let (u, out) = ask(&mut a, 1, "news", "getInfoRequest", json!({}));
    assert_eq!(
        answer(&out, 1, &u)["payload"]["implementationMetadata"]["optionalFeatures"]["DesktopAgentBridging"],
        true
    );
    let (u, out) = ask(&mut a, 1, "news", "findIntentRequest", json!({ "intent": "StartOrder" }));
    let apps = answer(&out, 1, &u)["payload"]["appIntent"]["apps"].clone();
    assert_eq!(apps[0]["appId"], "ticket");
    assert_eq!(
        apps[1],
        json!({ "appId": "blotter", "title": "blotter (remote)", "name": "blotter (remote)", "desktopAgent": "bob" })
    );
    // Two targets: the resolver, which says where the remote one runs.
    let (_, out) =
        ask(&mut a, 1, "news", "raiseIntentRequest", json!({ "intent": "StartOrder", "context": instrument("A") }));
    let Some(Output::Resolve { choices, .. }) = out.iter().find(|o| matches!(o, Output::Resolve { .. })) else {
        panic!("{out:#?}")
    };
    assert_eq!(choices[1].desk.as_deref(), Some("bob"));
    // Targeted at bob's app: sent there, with the raiser named with its desk.
    let target = json!({ "appId": "blotter", "desktopAgent": "bob" });
    let (u, out) = ask(
        &mut a,
        1,
        "news",
        "raiseIntentRequest",
        json!({ "intent": "StartOrder", "context": instrument("B"), "app": target }),
    );
    let r = raise_on_desk(&out).clone();
    assert_eq!((r.desk.as_str(), r.app.as_str(), r.intent.as_str()), ("bob", "blotter", "StartOrder"));
    assert_eq!(r.source, json!({ "appId": "news", "instanceId": "1", "desktopAgent": "alice" }));
    assert!(sent(&out, 1).is_empty(), "answered when bob answers");
    // Another desk answering is ignored; bob's answers reach the raiser.
    let resolution =
        json!({ "intentResolution": { "source": { "appId": "blotter", "instanceId": "7" }, "intent": "StartOrder" } });
    assert!(a.desk_answer("carol", &r.request, "raiseIntentResponse", &resolution, 1_100).is_empty());
    let out = a.desk_answer("bob", &r.request, "raiseIntentResponse", &resolution, 1_100);
    assert_eq!(
        answer(&out, 1, &u)["payload"]["intentResolution"]["source"],
        json!({ "appId": "blotter", "instanceId": "7", "desktopAgent": "bob" })
    );
    let result = json!({ "intentResult": { "context": { "type": "fdc3.order", "id": { "n": 1 } } } });
    let out = a.desk_answer("bob", &r.request, "raiseIntentResultResponse", &result, 1_200);
    let m = answer(&out, 1, &u);
    assert_eq!(m["type"], "raiseIntentResultResponse");
    assert_eq!(m["payload"]["intentResult"]["context"]["id"]["n"], 1);
    assert!(a.desk_answer("bob", &r.request, "raiseIntentResultResponse", &result, 1_300).is_empty(), "once");
    // An error bob names that is not the standard's is delivery failed; an app bob does not
    // offer is unavailable; silence ends at the deadline.
    let raise = |a: &mut Agent, ticker: &str| {
        ask(
            a,
            1,
            "news",
            "raiseIntentRequest",
            json!({ "intent": "StartOrder", "context": instrument(ticker), "app": target }),
        )
    };
    let (u, out) = raise(&mut a, "C");
    let req = raise_on_desk(&out).request.clone();
    let out = a.desk_answer("bob", &req, "raiseIntentResponse", &json!({ "error": "<script>" }), 1_400);
    assert_eq!(answer(&out, 1, &u)["payload"]["error"], "IntentDeliveryFailed");
    let (u, out) = ask(
        &mut a,
        1,
        "news",
        "raiseIntentRequest",
        json!({ "intent": "StartOrder", "context": instrument("D"), "app": { "appId": "chart", "desktopAgent": "bob" } }),
    );
    assert_eq!(answer(&out, 1, &u)["payload"]["error"], "TargetAppUnavailable");
    let (u, _) = raise(&mut a, "E");
    assert!(a.sweep(1_000 + LISTENER_TIMEOUT_MS).iter().all(|o| !matches!(o, Output::Send { to: 1, .. })));
    let out = a.sweep(1_000 + LISTENER_TIMEOUT_MS + 5_000);
    assert_eq!(answer(&out, 1, &u)["payload"]["error"], "IntentDeliveryFailed");
    // Bob leaving takes its apps away.
    a.set_desk_apps("bob", Vec::new());
    let (u, out) = ask(&mut a, 1, "news", "findIntentRequest", json!({ "intent": "StartOrder" }));
    assert_eq!(answer(&out, 1, &u)["payload"]["appIntent"]["apps"].as_array().map(Vec::len), Some(1));
}

fn desk_answers(out: &[Output]) -> Vec<(&str, &str, &Value)> {
    out.iter()
        .filter_map(|o| match o {
            Output::AnswerDesk { desk, kind, payload, .. } => Some((desk.as_str(), kind.as_str(), payload)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_raise_from_another_desk_is_delivered_here_and_answered_there() {
    let mut a = agent();
    a.link_as("bob");
    a.add_instance(5, "ticket");
    let (_, _) = ask(&mut a, 5, "ticket", "addIntentListenerRequest", json!({ "intent": "StartOrder" }));
    let source = json!({ "appId": "news", "instanceId": "1", "desktopAgent": "alice" });
    let raise = |request: &str, app: &str, context: Value| DeskRaise {
        desk: "alice".to_owned(),
        request: request.to_owned(),
        app: app.to_owned(),
        intent: "StartOrder".to_owned(),
        context,
        source: source.clone(),
    };
    let out = a.raise_from_desk(raise("r1", "ticket", instrument("A")), 2_000);
    let event = sent(&out, 5)[0].clone();
    assert_eq!(event["type"], "intentEvent");
    assert_eq!(event["payload"]["originatingApp"], source);
    let answers = desk_answers(&out);
    assert_eq!(answers.len(), 1);
    assert_eq!((answers[0].0, answers[0].1), ("alice", "raiseIntentResponse"));
    assert_eq!(answers[0].2["intentResolution"]["source"]["appId"], "ticket");
    assert!(
        matches!(out.iter().find(|o| matches!(o, Output::AnswerDesk { .. })), Some(Output::AnswerDesk { request, .. }) if request == "r1")
    );
    let (_, out) = ask(
        &mut a,
        5,
        "ticket",
        "intentResultRequest",
        json!({ "intentEventUuid": event["meta"]["eventUuid"], "raiseIntentRequestUuid": "r1", "intentResult": { "context": { "type": "fdc3.order" } } }),
    );
    let answers = desk_answers(&out);
    assert_eq!(answers[0].1, "raiseIntentResultResponse");
    assert_eq!(answers[0].2["intentResult"]["context"]["type"], "fdc3.order");
    // Not running: launched, then delivered once it listens.
    let _ = a.remove_instance(5, 2_100);
    let out = a.raise_from_desk(raise("r2", "ticket", instrument("B")), 2_200);
    let Some(Output::Launch { launch, app }) = out.first() else { panic!("{out:#?}") };
    assert_eq!(app, "ticket");
    assert!(desk_answers(&out).is_empty());
    assert!(a.launched(*launch, Some(6), 2_300).is_empty());
    let (_, out) = ask(&mut a, 6, "ticket", "addIntentListenerRequest", json!({ "intent": "StartOrder" }));
    assert_eq!(desk_answers(&out)[0].2["intentResolution"]["source"]["instanceId"], "6");
    // An app that does not take it, or a broken context: the standard's errors, sent back.
    let out = a.raise_from_desk(raise("r3", "news", instrument("C")), 2_400);
    assert_eq!(desk_answers(&out)[0].2["error"], "NoAppsFound");
    let out = a.raise_from_desk(raise("r4", "ticket", json!({ "id": 1 })), 2_400);
    assert_eq!(desk_answers(&out)[0].2["error"], "MalformedContext");
    assert!(a.pending().results <= 1);
}

#[test]
fn a_broadcast_in_a_trace_tells_its_listeners_the_trace() {
    let mut a = agent();
    a.add_instance(1, "chart");
    a.add_instance(2, "news");
    for (i, app) in [(1, "chart"), (2, "news")] {
        let (_, _) = ask(&mut a, i, app, "joinUserChannelRequest", json!({ "channelId": "fdc3.channel.1" }));
    }
    let (_, _) = ask(&mut a, 2, "news", "addContextListenerRequest", json!({ "channelId": null, "contextType": null }));
    const T: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let msg = json!({
        "type": "broadcastRequest",
        "payload": { "channelId": "fdc3.channel.1", "context": instrument("AAPL") },
        "meta": { "requestUuid": "traced", "traceparent": T },
    });
    let out = a.handle(1, "chart", &msg.to_string(), 1_000).unwrap();
    let news = sent(&out, 2);
    assert_eq!(news[0]["meta"]["traceparent"], T);
    assert_eq!(news[0]["payload"]["metadata"]["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    // An app's own trace id passes as it is; a broadcast in no trace says none.
    let (_, out) = ask(
        &mut a,
        1,
        "chart",
        "broadcastRequest",
        json!({ "channelId": "fdc3.channel.1", "context": instrument("MSFT"), "metadata": { "traceId": "t-42" } }),
    );
    let news = sent(&out, 2);
    assert_eq!(news[0]["payload"]["metadata"]["traceId"], "t-42");
    assert!(news[0]["meta"].get("traceparent").is_none());
    let (_, out) = ask(
        &mut a,
        1,
        "chart",
        "broadcastRequest",
        json!({ "channelId": "fdc3.channel.1", "context": instrument("X") }),
    );
    assert!(sent(&out, 2)[0]["payload"].get("metadata").is_none());
}

#[test]
fn an_intent_raised_in_a_trace_tells_its_handler_the_trace() {
    let mut a = agent();
    a.add_instance(1, "ticket");
    a.add_instance(2, "chart");
    let (_, _) = ask(&mut a, 1, "ticket", "addIntentListenerRequest", json!({ "intent": "StartOrder" }));
    const T: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let msg = json!({
        "type": "raiseIntentRequest",
        "payload": { "intent": "StartOrder", "context": instrument("IBM") },
        "meta": { "requestUuid": "traced-raise", "traceparent": T },
    });
    let out = a.handle(2, "chart", &msg.to_string(), 1_000).unwrap();
    let event = sent(&out, 1)[0].clone();
    assert_eq!(event["type"], "intentEvent");
    assert_eq!(event["meta"]["traceparent"], T);
    assert_eq!(event["payload"]["metadata"]["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(event["payload"]["metadata"]["source"]["appId"], "chart");
    // In no trace: no metadata.
    let (_, out) =
        ask(&mut a, 2, "chart", "raiseIntentRequest", json!({ "intent": "StartOrder", "context": instrument("X") }));
    assert!(sent(&out, 1)[0]["payload"].get("metadata").is_none());
}
