//! Fuzzes the FDC3 agent with arbitrary DACP traffic from three app instances, mixed with
//! the shell's own calls (resets, closes, launches, resolver answers, time passing): no
//! panic, every message the agent sends is a `{type, payload, meta}` object, and every
//! answer to a request names that request.
//!
//! Input: lines; a line's first byte picks the instance or the shell call, the rest is the
//! message's JSON.
#![no_main]

use broker::fdc3::{AppRecord, Directory, IntentDecl, Output};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn directory() -> Directory {
    let mut d = Directory::new();
    for (id, intent) in [("chart", "ViewChart"), ("chart2", "ViewChart"), ("ticket", "StartOrder")] {
        let mut r = AppRecord::new(id, id);
        r.url = Some(format!("https://{id}.example/"));
        r.intents.push(IntentDecl {
            name: intent.to_owned(),
            display_name: None,
            contexts: vec!["fdc3.instrument".to_owned()],
            result_type: None,
        });
        d.insert(r);
    }
    d
}

fuzz_target!(|data: &[u8]| {
    let mut agent = broker::fdc3::Agent::new(directory(), 1, "0");
    let apps = ["chart", "chart2", "ticket"];
    let mut now = 0u64;
    let mut launches = Vec::new();
    let mut questions = Vec::new();
    for line in data.split(|b| *b == b'\n').take(200) {
        let Some((&op, rest)) = line.split_first() else { continue };
        now += 97;
        let outputs = match op % 8 {
            0..=2 => {
                let from = u64::from(op % 3) + 1;
                let text = String::from_utf8_lossy(rest);
                let uuid = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v.get("meta")?.get("requestUuid")?.as_str().map(str::to_owned));
                match agent.handle(from, apps[(from - 1) as usize], &text, now) {
                    Ok(out) => {
                        // The first message to the asker answers the request, and the app
                        // host's reader finds which one it answers.
                        if let Some(message) = out.iter().find_map(|o| match o {
                            Output::Send { to, message } if *to == from => Some(message),
                            _ => None,
                        }) && message["type"].as_str().is_some_and(|t| t.ends_with("Response"))
                        {
                            assert_eq!(message["meta"]["requestUuid"].as_str(), uuid.as_deref());
                            let text = message.to_string();
                            assert_eq!(protocol::envelope::dacp_answered(&text).as_deref(), uuid.as_deref());
                        }
                        out
                    }
                    Err(_) => Vec::new(),
                }
            }
            3 => agent.reset_instance(u64::from(rest.first().copied().unwrap_or(0) % 4), now),
            4 => agent.remove_instance(u64::from(rest.first().copied().unwrap_or(0) % 4), now),
            5 => match launches.pop() {
                Some(l) => agent.launched(l, (rest.first().copied().unwrap_or(0) % 2 == 0).then_some(9), now),
                None => Vec::new(),
            },
            6 => match questions.pop() {
                Some(q) => agent.resolved(q, rest.first().map(|b| usize::from(*b % 4)), now),
                None => Vec::new(),
            },
            _ => {
                now += u64::from(rest.first().copied().unwrap_or(0)) * 1000;
                agent.sweep(now)
            }
        };
        for o in outputs {
            match o {
                Output::Send { message, .. } => {
                    assert!(message["type"].is_string());
                    assert!(message["payload"].is_object());
                    assert!(message["meta"].is_object());
                }
                Output::Launch { launch, .. } => launches.push(launch),
                Output::Resolve { resolve, choices, .. } => {
                    assert!(choices.len() > 1);
                    questions.push(resolve);
                }
                _ => {}
            }
        }
    }
});
