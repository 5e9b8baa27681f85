//! Fuzzes the reading of what another desk sends a linked desk: a message on a link group's
//! stream (an arbitrary subject, headers and size), a broadcast on a shared channel, a raise
//! for one of this desk's apps, an answer to one of its raises, and a desk's announcement of
//! its apps. No panic; what is read names a desk other than this one, keeps to what the group
//! shares, and every refusal is one line.
#![no_main]

use bridge::wire::{self, Local, Verdict};
use libfuzzer_sys::fuzz_target;

fn one_line(why: &str) {
    assert!(!why.is_empty() && !why.contains('\n'), "{why:?}");
}

fuzz_target!(|data: &[u8]| {
    let (which, rest) = data.split_first().unwrap_or((&0, &[]));
    let text = String::from_utf8_lossy(rest);
    // subject \n desk \n id \n user \n app \n size-or-body
    let mut parts = text.splitn(6, '\n');
    let subject = parts.next().unwrap_or_default();
    let headers: Vec<(&str, &str)> = [wire::DESK, wire::MSG_ID, wire::USER, wire::APP, wire::DURABLE]
        .into_iter()
        .zip(parts.by_ref())
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let last = parts.next().unwrap_or_default();
    let header = |name: &str| headers.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let (user, app, intents) =
        (["fdc3.channel.1".to_owned()], ["desk.orders".to_owned()], ["StartOrder".to_owned(), "ViewChart".to_owned()]);
    let local = Local {
        group: "eq",
        desk: "alice",
        user_channels: &user,
        app_channels: &app,
        intents: &intents,
        max_bytes: 1024,
    };
    let body = last.as_bytes();
    match which % 5 {
        0 => {
            let size = last.parse::<usize>().unwrap_or(0);
            match wire::inbound("eq", "alice", subject, header, size, 1024) {
                Ok(Verdict::Deliver(m)) => {
                    assert!(broker::Topic::parse(&m.topic).is_ok());
                    assert_ne!(m.desk, "alice");
                    assert!(size <= 1024);
                    assert_eq!(wire::bus_subject("eq", &m.topic).as_deref(), Ok(subject));
                }
                Ok(Verdict::Own) => assert_eq!(header(wire::DESK), Some("alice")),
                Err(why) => one_line(&why),
            }
        }
        1 => match wire::inbound_context(&local, subject, header, body) {
            Ok(Some(c)) => {
                assert!(user.contains(&c.channel) || app.contains(&c.channel));
                assert_ne!(c.origin["desktopAgent"], "alice");
                assert!(c.context["type"].is_string());
            }
            Ok(None) => assert_eq!(header(wire::DESK), Some("alice")),
            Err(why) => one_line(&why),
        },
        2 => match wire::inbound_raise(&local, subject, header, body) {
            Ok(Some(r)) => {
                assert!(intents.contains(&r.intent));
                assert_ne!(r.desk, "alice");
                assert_eq!(r.source["desktopAgent"].as_str(), Some(r.desk.as_str()));
            }
            Ok(None) => assert_eq!(header(wire::DESK), Some("alice")),
            Err((why, _)) => one_line(&why),
        },
        3 => match wire::inbound_answer(&local, subject, header, body) {
            Ok(Some(a)) => {
                assert_ne!(a.desk, "alice");
                assert!(a.payload.is_object());
            }
            Ok(None) => assert_eq!(header(wire::DESK), Some("alice")),
            Err(why) => one_line(&why),
        },
        _ => match wire::inbound_apps(&local, subject, header, body) {
            Ok(Some(d)) => {
                assert_ne!(d.desk, "alice");
                assert!(
                    d.apps.iter().all(|a| !a.intents.is_empty() && a.intents.iter().all(|i| intents.contains(&i.name)))
                );
            }
            Ok(None) => assert_eq!(header(wire::DESK), Some("alice")),
            Err(why) => one_line(&why),
        },
    }
});
