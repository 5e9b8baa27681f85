use serde_json::json;

use super::*;

fn headers<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
    move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
}

struct Shared {
    user: Vec<String>,
    app: Vec<String>,
    intents: Vec<String>,
}

fn shared() -> Shared {
    Shared {
        user: vec!["fdc3.channel.1".to_owned()],
        app: vec!["desk.orders".to_owned()],
        intents: vec!["StartOrder".to_owned(), "ViewChart".to_owned()],
    }
}

fn local<'a>(s: &'a Shared, desk: &'a str) -> Local<'a> {
    Local { group: "eq", desk, user_channels: &s.user, app_channels: &s.app, intents: &s.intents, max_bytes: 1024 }
}

#[test]
fn a_broadcast_from_another_desk_is_read_with_its_origin() {
    let s = shared();
    let alice = local(&s, "alice");
    let h = [(DESK, "bob"), (MSG_ID, "bob:02"), (APP, "blotter")];
    let body = context_body(&json!({ "type": "fdc3.instrument", "id": { "ticker": "IBM" } }), &json!({}));
    let subject = channel_subject("eq", "fdc3.channel.1");
    let got = inbound_context(&alice, &subject, headers(&h), &body).unwrap().unwrap();
    assert_eq!(got.channel, "fdc3.channel.1");
    assert_eq!(got.context["id"]["ticker"], "IBM");
    assert_eq!(got.origin, json!({ "appId": "blotter", "desktopAgent": "bob" }));
    let app = inbound_context(&alice, &app_channel_subject("eq", "desk.orders"), headers(&h), &body).unwrap().unwrap();
    assert_eq!(app.channel, "desk.orders");
    // Its own comes back as nothing; each bad part is named.
    let own = [(DESK, "alice"), (MSG_ID, "a")];
    assert_eq!(inbound_context(&alice, &subject, headers(&own), &body), Ok(None));
    for (subject, body, says) in [
        (channel_subject("eq", "fdc3.channel.2"), body.clone(), "not shared"),
        (channel_subject("eq", "desk.orders"), body.clone(), "not shared"),
        (app_channel_subject("eq", "fdc3.channel.1"), body.clone(), "not shared"),
        (channel_subject("fx", "fdc3.channel.1"), body.clone(), "not one of group"),
        (subject.clone(), b"{".to_vec(), "not JSON"),
        (subject.clone(), br#"{"context": {"id": 1}}"#.to_vec(), "no context with a type"),
        (subject.clone(), vec![b' '; 2000], "byte limit"),
    ] {
        let e = inbound_context(&alice, &subject, headers(&h), &body).unwrap_err();
        assert!(e.contains(says), "{subject}: {e}");
    }
}

fn a_raise() -> DeskRaise {
    DeskRaise {
        desk: "bob".to_owned(),
        request: "r-1".to_owned(),
        app: "blotter".to_owned(),
        intent: "StartOrder".to_owned(),
        context: json!({ "type": "fdc3.instrument", "id": { "ticker": "IBM" } }),
        source: json!({ "appId": "news", "instanceId": "3" }),
    }
}

#[test]
fn a_raise_crosses_in_the_bridging_shape_and_the_header_names_the_desk() {
    let s = shared();
    let bob = local(&s, "bob");
    let body = raise_body(&a_raise(), "alice");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["type"], "raiseIntentRequest");
    assert_eq!(v["meta"]["source"]["desktopAgent"], "alice");
    assert_eq!(v["meta"]["destination"], json!({ "appId": "blotter", "desktopAgent": "bob" }));
    let subject = raise_subject("eq", "bob");
    let got = inbound_raise(&bob, &subject, headers(&[(DESK, "alice")]), &body).unwrap().unwrap();
    assert_eq!(got.desk, "alice");
    assert_eq!((got.request.as_str(), got.app.as_str(), got.intent.as_str()), ("r-1", "blotter", "StartOrder"));
    assert_eq!(got.source, json!({ "appId": "news", "instanceId": "3", "desktopAgent": "alice" }));
    // The header is who sent it, whatever the body says.
    let got = inbound_raise(&bob, &subject, headers(&[(DESK, "carol")]), &body).unwrap().unwrap();
    assert_eq!(got.source["desktopAgent"], "carol");
    assert_eq!(inbound_raise(&bob, &subject, headers(&[(DESK, "bob")]), &body), Ok(None));
    // Each bad part named, with the request id once it could be read.
    let mut not_shared = a_raise();
    not_shared.intent = "Secret".to_owned();
    let mut no_context = a_raise();
    no_context.context = json!({ "id": 1 });
    let cases = [
        (raise_subject("eq", "carol"), body.clone(), "not where this desk takes raises", None),
        (subject.clone(), b"[]".to_vec(), "not a raiseIntentRequest", None),
        (subject.clone(), raise_body(&not_shared, "alice"), "not shared", Some("r-1")),
        (subject.clone(), raise_body(&no_context, "alice"), "no context", Some("r-1")),
        (subject.clone(), vec![b' '; 2000], "byte limit", None),
    ];
    for (subject, body, says, request) in cases {
        let (e, r) = inbound_raise(&bob, &subject, headers(&[(DESK, "alice")]), &body).unwrap_err();
        assert!(e.contains(says), "{e}");
        assert_eq!(r.as_deref(), request, "{e}");
    }
    let (e, _) = inbound_raise(&bob, &subject, headers(&[(DESK, "a.b")]), &body).unwrap_err();
    assert!(e.contains("not a desk name"), "{e}");
}

#[test]
fn answers_are_read_only_as_answers_to_raises() {
    let s = shared();
    let alice = local(&s, "alice");
    let subject = answer_subject("eq", "alice");
    let payload = json!({ "intentResolution": { "source": { "appId": "blotter" }, "intent": "StartOrder" } });
    let body = answer_body("r-1", "raiseIntentResponse", &payload, "bob");
    let got = inbound_answer(&alice, &subject, headers(&[(DESK, "bob")]), &body).unwrap().unwrap();
    assert_eq!(got, Answer { desk: "bob".into(), request: "r-1".into(), kind: "raiseIntentResponse".into(), payload });
    for (body, says) in [
        (answer_body("r-1", "broadcastEvent", &json!({}), "bob"), "not an answer"),
        (answer_body("", "raiseIntentResponse", &json!({}), "bob"), "requestUuid"),
        (answer_body("r-1", "raiseIntentResultResponse", &json!("x"), "bob"), "no payload object"),
    ] {
        let e = inbound_answer(&alice, &subject, headers(&[(DESK, "bob")]), &body).unwrap_err();
        assert!(e.contains(says), "{e}");
    }
}

#[test]
fn a_desks_apps_cross_with_only_the_shared_intents() {
    let s = shared();
    let decl = |name: &str| IntentDecl {
        name: name.to_owned(),
        display_name: Some(format!("{name}!")),
        contexts: vec!["fdc3.instrument".to_owned()],
        result_type: None,
    };
    let apps = vec![
        RemoteApp {
            app_id: "blotter".into(),
            title: "Blotter".into(),
            intents: vec![decl("StartOrder"), decl("Secret")],
        },
        RemoteApp { app_id: "hidden".into(), title: "Hidden".into(), intents: vec![decl("Secret")] },
    ];
    let body = apps_body(&local(&s, "bob"), &apps, true);
    let got =
        inbound_apps(&local(&s, "alice"), &apps_subject("eq"), headers(&[(DESK, "bob")]), &body).unwrap().unwrap();
    assert!(got.hello);
    assert_eq!(got.desk, "bob");
    assert_eq!(got.apps.len(), 1);
    assert_eq!(got.apps[0].intents, [decl("StartOrder")]);
    // A desk that shares fewer intents reads fewer.
    let fewer = Shared { intents: vec!["ViewChart".into()], ..shared() };
    let got =
        inbound_apps(&local(&fewer, "alice"), &apps_subject("eq"), headers(&[(DESK, "bob")]), &body).unwrap().unwrap();
    assert!(got.apps.is_empty());
    let many = json!({ "type": "tessera.deskApps", "payload": { "apps": [{ "appId": "a", "title": "A", "intents": [{ "name": "ViewChart", "contexts": vec!["x"; 100] }] }] } });
    let e =
        inbound_apps(&local(&s, "alice"), &apps_subject("eq"), headers(&[(DESK, "bob")]), many.to_string().as_bytes())
            .unwrap_err();
    assert!(e.contains("apps[0].intents[0].contexts"), "{e}");
}

proptest::proptest! {
    #[test]
    fn what_one_desk_sends_the_other_reads_back(
        app in "[a-zA-Z0-9_.-]{1,20}",
        request in "[a-f0-9-]{1,40}",
        ticker in "\\PC{0,30}",
    ) {
        let s = shared();
        let mut r = a_raise();
        r.app = app;
        r.request = request;
        r.context = json!({ "type": "fdc3.instrument", "id": { "ticker": ticker } });
        let body = raise_body(&r, "alice");
        let got = inbound_raise(&local(&s, "bob"), &raise_subject("eq", "bob"), headers(&[(DESK, "alice")]), &body);
        let got = got.map_err(|e| e.0).unwrap().unwrap();
        proptest::prop_assert_eq!(&got.app, &r.app);
        proptest::prop_assert_eq!(&got.request, &r.request);
        proptest::prop_assert_eq!(&got.context, &r.context);
    }
}
