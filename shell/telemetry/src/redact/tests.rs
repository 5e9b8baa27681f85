use serde_json::json;

use super::*;

#[test]
fn secrets_under_their_names_are_replaced_at_any_depth() {
    let v = json!({
        "link": { "desk": "alice", "passwordSecret": "vault-entry", "servers": ["nats://a:4222"] },
        "apps": [{ "apiKey": 12, "name": "x" }],
        "Authorization": "Basic abc",
        "tokenRequired": false,
    });
    let r = json(&v);
    assert_eq!(r["link"]["passwordSecret"], REDACTED);
    assert_eq!(r["link"]["desk"], "alice");
    assert_eq!(r["link"]["servers"][0], "nats://a:4222");
    assert_eq!(r["apps"][0]["apiKey"], REDACTED);
    assert_eq!(r["apps"][0]["name"], "x");
    assert_eq!(r["Authorization"], REDACTED);
    assert_eq!(r["tokenRequired"], false, "a switch is not a secret");
}

#[test]
fn things_that_look_like_secrets_are_replaced_wherever_they_are() {
    let seed = "SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU";
    assert_eq!(seed.len(), 58);
    let jwt = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJqdGkiOiJBQkMifQ.c2lnbmF0dXJlLWJ5dGVz";
    let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----";
    let line = format!("seed {seed}, jwt \"{jwt}\", key {pem} done; Authorization: Bearer abc.def ok");
    let r = text(&line);
    for secret in [seed, jwt, "MC4CAQAwBQYDK2VwBCIEIA==", "abc.def"] {
        assert!(!r.contains(secret), "{secret} in {r}");
    }
    assert!(r.ends_with(" ok") && r.starts_with("seed [redacted], jwt \"[redacted]\""), "{r}");
    // Public things stay: a public NKey (U...), a certificate, ordinary words.
    let public = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4 -----BEGIN CERTIFICATE-----x-----END CERTIFICATE-----";
    assert_eq!(text(public), public);
}

#[test]
fn log_lines_are_redacted_as_json_or_as_text() {
    let l = line(r#"{"level":"INFO","fields":{"message":"linked","token":"t0k3n"}}"#);
    assert!(!l.contains("t0k3n") && l.contains("linked"), "{l}");
    assert_eq!(line("plain words stay"), "plain words stay");
    assert_eq!(line("{ not json"), "{ not json");
}

#[test]
fn passwords_in_urls_are_replaced_and_the_rest_of_the_url_kept() {
    assert_eq!(
        text("servers [\"nats://desk:hunter2@10.0.0.1:4222\", \"tls://n.example:4222\"]"),
        "servers [\"nats://desk:[redacted]@10.0.0.1:4222\", \"tls://n.example:4222\"]"
    );
    assert_eq!(text("https://user@host/path?q=a:b@c"), "https://user@host/path?q=a:b@c");
    assert_eq!(text("see http://h:80/x"), "see http://h:80/x");
}
