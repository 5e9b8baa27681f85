//! What must not leave the desk in a diagnostics bundle: secrets. A JSON value under a key
//! that names one (password, token, secret, seed, credentials, private key, authorization,
//! cookie) is replaced whole; and any text, JSON string or log line, has the things that look
//! like secrets whatever their key replaced: NKey seeds, JWTs, PEM private keys, a `Bearer`
//! or `Basic` credential, and the password in a URL.

use serde_json::Value;

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

const SECRET_KEYS: [&str; 11] = [
    "password",
    "passwd",
    "secret",
    "token",
    "seed",
    "credential",
    "apikey",
    "api_key",
    "privatekey",
    "private_key",
    "authorization",
];

/// Whether a JSON key names a secret (`linkPassword`, `tokenSecret`, `nkeySeed`).
pub fn secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|s| key.contains(s)) || key == "cookie"
}

/// `value` with every secret replaced.
pub fn json(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if secret_key(k) && !v.is_null() && v != &Value::Bool(false) {
                        Value::String(REDACTED.to_owned())
                    } else {
                        json(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(json).collect()),
        Value::String(s) => Value::String(text(s)),
        other => other.clone(),
    }
}

/// A log file's line: a JSON line redacted as JSON, anything else as text.
pub fn line(line: &str) -> String {
    match serde_json::from_str::<Value>(line) {
        Ok(v @ Value::Object(_)) => json(&v).to_string(),
        _ => text(line),
    }
}

/// Passes over a text at most: a replacement can join what was apart into something that
/// looks like a secret, so passes go on until one changes nothing.
const PASSES: usize = 16;

/// `s` with whatever looks like a secret replaced.
pub fn text(s: &str) -> String {
    let mut now = pass(s);
    for _ in 1..PASSES {
        let next = pass(&now);
        if next == now {
            break;
        }
        now = next;
    }
    now
}

fn pass(s: &str) -> String {
    let s = pem_keys(s);
    let s = after_scheme(&s, "Bearer ");
    let s = after_scheme(&s, "Basic ");
    let s = url_passwords(&s);
    let mut out = String::with_capacity(s.len());
    let mut word = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=' | '+' | '/') {
            word.push(c);
        } else {
            out.push_str(&token(&word));
            word.clear();
            out.push(c);
        }
    }
    out.push_str(&token(&word));
    out
}

/// A word of text, or [`REDACTED`] if it looks like an NKey seed or a JWT.
fn token(word: &str) -> String {
    let seed = word.len() == 58
        && word.starts_with('S')
        && word.chars().all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c));
    let jwt = word.starts_with("eyJ") && word.split('.').count() == 3 && word.len() > 40;
    if seed || jwt { REDACTED.to_owned() } else { word.to_owned() }
}

/// The credential after `scheme` (an HTTP `Authorization` value), replaced.
fn after_scheme(s: &str, scheme: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find(scheme) {
        let (head, tail) = rest.split_at(at + scheme.len());
        out.push_str(head);
        let end = tail.find(|c: char| c.is_whitespace() || c == '"' || c == '\'').unwrap_or(tail.len());
        if end > 0 {
            out.push_str(REDACTED);
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// The password in a URL's user part (`nats://desk:PASSWORD@host`), replaced.
fn url_passwords(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end =
            tail.find(|c: char| c.is_whitespace() || matches!(c, '/' | '"' | '\'' | ',')).unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(user_end), Some(colon)) if colon < user_end => {
                out.push_str(&authority[..=colon]);
                out.push_str(REDACTED);
                out.push_str(&authority[user_end..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

/// PEM private keys (`-----BEGIN ... PRIVATE KEY-----` to its end), replaced.
fn pem_keys(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("-----BEGIN ") {
        let (head, tail) = rest.split_at(at);
        out.push_str(head);
        let header_end = tail[11..].find("-----").map(|i| i + 16);
        let private = header_end.is_some_and(|e| tail[..e].contains("PRIVATE KEY"));
        match (private, tail.find("-----END ")) {
            (true, Some(end)) => {
                out.push_str(REDACTED);
                let after = tail[end + 9..].find("-----").map_or(tail.len(), |i| end + 9 + i + 5);
                rest = &tail[after..];
            }
            (true, None) => {
                out.push_str(REDACTED);
                rest = "";
            }
            (false, _) => {
                out.push_str(&tail[..11]);
                rest = &tail[11..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests;
