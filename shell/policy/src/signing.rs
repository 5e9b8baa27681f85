//! Signed App Directory records, platform manifests, and the credentials of native apps started
//! outside the shell (`Credential`: IT signs an app id and the app's public key; the app then
//! signs the endpoint's challenge).
//!
//! A record carries its signature in a `signature` member: `{"keyId", "expires", "value"}`.
//! What is signed is the record's canonical JSON (keys sorted, no spaces) with `signature`
//! holding only `keyId` and `expires`, so the key and the expiry are covered too. A platform
//! manifest is signed the same way over its whole file, with the signature in a file beside it
//! (`desk.json.sig`, the same three fields). Ed25519; keys are named by id, listed as trusted
//! (or revoked) by the admin policy.
//!
//! Refused: no signature where one is required, an unknown or revoked key, a bad signature, a
//! signature past its expiry, a version lower than one seen before (a downgrade), duplicate
//! JSON keys (two readers could see two different records), and start URLs that are not plain
//! `https` origins (userinfo, a trailing dot, IDN, wildcards, or a port other than the one the
//! record's `origin` claims).

use std::collections::BTreeMap;
use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A key IT trusts to sign records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrustedKey {
    /// Its id, as signatures name it.
    pub id: String,
    /// The ed25519 public key, 64 hex digits.
    pub public_key: String,
}

/// The admin policy's signing rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SigningRules {
    /// Refuse unsigned records and manifests.
    #[serde(default)]
    pub require_signed: bool,
    /// Keys that may sign (two during a rotation).
    #[serde(default)]
    pub trusted_keys: Vec<TrustedKey>,
    /// Key ids no longer accepted, even if still listed as trusted.
    #[serde(default)]
    pub revoked_keys: Vec<String>,
}

/// Why a signed record or manifest is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not JSON, or JSON with the same key twice in an object.
    #[error("not acceptable JSON: {0}")]
    Json(String),
    /// Signatures are required and there is none.
    #[error("it is not signed, and the admin policy requires signatures")]
    Unsigned,
    /// The signature block is not `{keyId, expires, value}`.
    #[error("its signature is malformed: {0}")]
    Malformed(String),
    /// The key is not among the trusted ones.
    #[error("it is signed with key {0:?}, which is not trusted")]
    UnknownKey(String),
    /// The key was revoked.
    #[error("it is signed with key {0:?}, which is revoked")]
    RevokedKey(String),
    /// The signature does not match.
    #[error("its signature does not match its content (key {0:?})")]
    BadSignature(String),
    /// Past its expiry.
    #[error("its signature expired at {0}")]
    Expired(String),
    /// Older than a version already seen.
    #[error("it is version {got}, older than version {seen} seen before (a downgrade)")]
    Downgraded {
        /// The highest version seen.
        seen: String,
        /// This one's.
        got: String,
    },
    /// A start URL that a signed record may not have.
    #[error("details.url: {0}")]
    Url(String),
    /// A trusted key that does not parse.
    #[error("trusted key {0:?} is not 64 hex digits of an ed25519 public key")]
    BadTrustedKey(String),
}

/// Parses JSON, refusing an object with the same key twice (at any depth).
pub fn parse_strict(text: &str) -> Result<Value, SignatureError> {
    struct Strict(Value);
    impl<'de> Deserialize<'de> for Strict {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Strict;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("JSON")
                }
                fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
                    Ok(Strict(Value::Bool(v)))
                }
                fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
                    Ok(Strict(Value::from(v)))
                }
                fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
                    Ok(Strict(Value::from(v)))
                }
                fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
                    Ok(Strict(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)))
                }
                fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
                    Ok(Strict(Value::String(v.to_owned())))
                }
                fn visit_string<E>(self, v: String) -> Result<Strict, E> {
                    Ok(Strict(Value::String(v)))
                }
                fn visit_unit<E>(self) -> Result<Strict, E> {
                    Ok(Strict(Value::Null))
                }
                fn visit_none<E>(self) -> Result<Strict, E> {
                    Ok(Strict(Value::Null))
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
                    let mut out = Vec::new();
                    while let Some(Strict(v)) = seq.next_element()? {
                        out.push(v);
                    }
                    Ok(Strict(Value::Array(out)))
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
                    let mut out = Map::new();
                    while let Some(key) = map.next_key::<String>()? {
                        let Strict(v) = map.next_value()?;
                        if out.insert(key.clone(), v).is_some() {
                            return Err(serde::de::Error::custom(format!("the key {key:?} appears twice")));
                        }
                    }
                    Ok(Strict(Value::Object(out)))
                }
            }
            d.deserialize_any(V)
        }
    }
    serde_json::from_str::<Strict>(text).map(|s| s.0).map_err(|e| SignatureError::Json(e.to_string()))
}

/// The canonical JSON of `v`: object keys sorted, no spaces.
pub fn canonical(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let ordered: BTreeMap<&String, Value> = m.iter().map(|(k, v)| (k, sorted(v))).collect();
                Value::Object(ordered.into_iter().map(|(k, v)| (k.clone(), v)).collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(v).to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let text = text.trim();
    if text.len() != N * 2 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The bytes a record's signature covers: the record with `signature` reduced to its key id
/// and expiry, in canonical form.
fn record_message(record: &Map<String, Value>, key_id: &str, expires: &str) -> String {
    let mut m = record.clone();
    m.insert("signature".into(), serde_json::json!({ "keyId": key_id, "expires": expires }));
    canonical(&Value::Object(m))
}

/// Signs a record (its `signature` member is replaced).
pub fn sign_record(record: &Value, key: &SigningKey, key_id: &str, expires: &str) -> Result<Value, SignatureError> {
    let Value::Object(m) = record else { return Err(SignatureError::Json("a record is a JSON object".into())) };
    let sig = key.sign(record_message(m, key_id, expires).as_bytes());
    let mut out = m.clone();
    out.insert(
        "signature".into(),
        serde_json::json!({ "keyId": key_id, "expires": expires, "value": hex(&sig.to_bytes()) }),
    );
    Ok(Value::Object(out))
}

/// The detached signature of a manifest file's bytes: the JSON to put in `<file>.sig`.
pub fn sign_file(bytes: &[u8], key: &SigningKey, key_id: &str, expires: &str) -> Value {
    let sig = key.sign(&file_message(bytes, key_id, expires));
    serde_json::json!({ "keyId": key_id, "expires": expires, "value": hex(&sig.to_bytes()) })
}

fn file_message(bytes: &[u8], key_id: &str, expires: &str) -> Vec<u8> {
    let mut m = format!("tessera-manifest\n{key_id}\n{expires}\n").into_bytes();
    m.extend_from_slice(bytes);
    m
}

/// The public key of a signing key, as hex (what goes in `trustedKeys`).
pub fn public_hex(key: &SigningKey) -> String {
    hex(key.verifying_key().as_bytes())
}

/// Compares dotted versions numerically where both parts are numbers (`1.10` > `1.9`).
pub fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (pa, pb): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
    for i in 0..pa.len().max(pb.len()) {
        let (x, y) = (pa.get(i).copied().unwrap_or("0"), pb.get(i).copied().unwrap_or("0"));
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if o != std::cmp::Ordering::Equal {
            return o;
        }
    }
    std::cmp::Ordering::Equal
}

/// Checks a signed record's start URL: a plain `https` origin and path, with no userinfo, no
/// trailing dot, no IDN, no wildcard, and, if the record claims an `origin`, exactly that one
/// (scheme, host and port).
fn check_url(record: &Map<String, Value>) -> Result<(), SignatureError> {
    let bad = |why: &str| Err(SignatureError::Url(why.to_owned()));
    let Some(text) = record.get("details").and_then(|d| d.get("url")).and_then(Value::as_str) else {
        return Ok(()); // not a web app: nothing to check
    };
    if text.contains('*') {
        return bad("a wildcard is not a URL");
    }
    if !text.is_ascii() {
        return bad("international (IDN) host names are refused in signed records");
    }
    let Ok(url) = url::Url::parse(text) else { return bad("not a URL") };
    if url.scheme() != "https" {
        return bad("only https is accepted in signed records");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return bad("user names and passwords do not belong in app URLs");
    }
    let Some(host) = url.host_str() else { return bad("no host") };
    if host.ends_with('.') {
        return bad("a host with a trailing dot");
    }
    if host.split('.').any(|l| l.starts_with("xn--")) {
        return bad("international (IDN) host names are refused in signed records");
    }
    if let Some(claimed) = record.get("origin") {
        let claimed = claimed.as_str().and_then(crate::urls::normal_origin);
        match claimed {
            Some(c) if c == url.origin().ascii_serialization() => {}
            Some(c) => {
                return Err(SignatureError::Url(format!("its origin is not the {c} the record claims (port or host)")));
            }
            None => return bad("the record's origin is not an https origin"),
        }
    }
    Ok(())
}

/// What a native app started outside the shell proves itself with: IT's signature over the
/// app's id and the public key the app holds the secret half of. The endpoint checks the
/// signature, then has the app sign a fresh challenge with its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The manifest app it is for.
    pub app: String,
    /// The app's ed25519 public key.
    pub public_key: [u8; 32],
    /// When the signature expires (RFC 3339).
    pub expires: String,
}

/// The kind a credential record names.
pub const CREDENTIAL_KIND: &str = "tessera.credential";

/// IT's credential for `app` holding `public_key`, signed with `key` until `expires`.
pub fn sign_credential(
    app: &str,
    public_key: &VerifyingKey,
    key: &SigningKey,
    key_id: &str,
    expires: &str,
) -> Result<Value, SignatureError> {
    let record = serde_json::json!({ "kind": CREDENTIAL_KIND, "app": app, "publicKey": hex(public_key.as_bytes()) });
    sign_record(&record, key, key_id, expires)
}

/// Checks an app's answer to a challenge: `signature` (128 hex digits) over
/// `protocol::native::challenge_message` with the credential's key.
pub fn check_proof(credential: &Credential, nonce: &str, signature: &str) -> Result<(), SignatureError> {
    let sig =
        unhex::<64>(signature).ok_or_else(|| SignatureError::Malformed("the proof is not 128 hex digits".into()))?;
    let key = VerifyingKey::from_bytes(&credential.public_key)
        .map_err(|_| SignatureError::Malformed("the credential's public key is not an ed25519 key".into()))?;
    let message = protocol::native::challenge_message(&credential.app, nonce);
    key.verify(message.as_bytes(), &Signature::from_bytes(&sig))
        .map_err(|_| SignatureError::BadSignature(format!("the proof for {}", credential.app)))
}

/// Checks signatures against the admin policy's rules.
#[derive(Debug, Clone, Default)]
pub struct Checker {
    rules: SigningRules,
    keys: BTreeMap<String, VerifyingKey>,
}

impl Checker {
    /// A checker for `rules`; each trusted key must parse.
    pub fn new(rules: &SigningRules) -> Result<Self, SignatureError> {
        let mut keys = BTreeMap::new();
        for k in &rules.trusted_keys {
            let bytes = unhex::<32>(&k.public_key).ok_or_else(|| SignatureError::BadTrustedKey(k.id.clone()))?;
            let key = VerifyingKey::from_bytes(&bytes).map_err(|_| SignatureError::BadTrustedKey(k.id.clone()))?;
            keys.insert(k.id.clone(), key);
        }
        Ok(Self { rules: rules.clone(), keys })
    }

    /// The trusted keys that are not revoked, as raw ed25519 public keys (what release
    /// archives' zipsign signatures are checked against).
    pub fn release_keys(&self) -> Vec<[u8; 32]> {
        self.keys.iter().filter(|(id, _)| !self.rules.revoked_keys.contains(id)).map(|(_, k)| k.to_bytes()).collect()
    }

    /// The ids of the revoked keys.
    pub fn revoked(&self) -> &[String] {
        &self.rules.revoked_keys
    }

    /// Whether signatures are required.
    pub fn required(&self) -> bool {
        self.rules.require_signed
    }

    fn check_block(
        &self,
        block: &Value,
        message: impl Fn(&str, &str) -> Vec<u8>,
        now: &str,
    ) -> Result<(), SignatureError> {
        let field = |name: &str| {
            block
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| SignatureError::Malformed(format!("no {name:?} string")))
        };
        let (key_id, expires, value) = (field("keyId")?, field("expires")?, field("value")?);
        if let Some(extra) =
            block.as_object().and_then(|o| o.keys().find(|k| !["keyId", "expires", "value"].contains(&k.as_str())))
        {
            return Err(SignatureError::Malformed(format!("unexpected field {extra:?}")));
        }
        if self.rules.revoked_keys.iter().any(|r| r == key_id) {
            return Err(SignatureError::RevokedKey(key_id.to_owned()));
        }
        let key = self.keys.get(key_id).ok_or_else(|| SignatureError::UnknownKey(key_id.to_owned()))?;
        let sig =
            unhex::<64>(value).ok_or_else(|| SignatureError::Malformed("the value is not 128 hex digits".into()))?;
        key.verify(&message(key_id, expires), &Signature::from_bytes(&sig))
            .map_err(|_| SignatureError::BadSignature(key_id.to_owned()))?;
        let (Some(exp), Some(now_t)) = (broker::Timestamp::parse(expires), broker::Timestamp::parse(now)) else {
            return Err(SignatureError::Malformed(format!("expires {expires:?} is not an RFC 3339 UTC time")));
        };
        if exp <= now_t {
            return Err(SignatureError::Expired(expires.to_owned()));
        }
        Ok(())
    }

    /// Checks one App Directory record (as JSON text, so duplicate keys are caught) at time
    /// `now` (RFC 3339), given the highest version of this app seen before. Unsigned records
    /// pass when signatures are not required, but their URLs are checked all the same when
    /// they are signed.
    pub fn check_record(&self, text: &str, seen_version: Option<&str>, now: &str) -> Result<Value, SignatureError> {
        let value = parse_strict(text)?;
        self.check_record_value(&value, seen_version, now)?;
        Ok(value)
    }

    /// [`Checker::check_record`] for a record already parsed with [`parse_strict`].
    pub fn check_record_value(
        &self,
        value: &Value,
        seen_version: Option<&str>,
        now: &str,
    ) -> Result<(), SignatureError> {
        let Value::Object(record) = value else { return Err(SignatureError::Json("a record is a JSON object".into())) };
        match record.get("signature") {
            None if self.rules.require_signed => return Err(SignatureError::Unsigned),
            None => return Ok(()),
            Some(block) => {
                self.check_block(block, |k, e| record_message(record, k, e).into_bytes(), now)?;
            }
        }
        check_url(record)?;
        if let (Some(seen), Some(got)) = (seen_version, record.get("version").and_then(Value::as_str))
            && version_cmp(got, seen) == std::cmp::Ordering::Less
        {
            return Err(SignatureError::Downgraded { seen: seen.to_owned(), got: got.to_owned() });
        }
        Ok(())
    }

    /// Checks a native app's credential (a JSON object, as its hello carries it) at time `now`:
    /// always signed (whatever `requireSigned` says), by a trusted key, unexpired, for an app,
    /// with a well-formed public key, and nothing else in it.
    pub fn check_credential(&self, value: &Value, now: &str) -> Result<Credential, SignatureError> {
        let Value::Object(record) = value else {
            return Err(SignatureError::Json("a credential is a JSON object".into()));
        };
        let block = record.get("signature").ok_or(SignatureError::Unsigned)?;
        self.check_block(block, |k, e| record_message(record, k, e).into_bytes(), now)?;
        if let Some(extra) = record.keys().find(|k| !["kind", "app", "publicKey", "signature"].contains(&k.as_str())) {
            return Err(SignatureError::Malformed(format!("unexpected field {extra:?} in a credential")));
        }
        if record.get("kind").and_then(Value::as_str) != Some(CREDENTIAL_KIND) {
            return Err(SignatureError::Malformed(format!("a credential's kind is {CREDENTIAL_KIND:?}")));
        }
        let app = record
            .get("app")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| SignatureError::Malformed("a credential names its \"app\"".into()))?;
        let public_key = record
            .get("publicKey")
            .and_then(Value::as_str)
            .and_then(unhex::<32>)
            .filter(|k| VerifyingKey::from_bytes(k).is_ok())
            .ok_or_else(|| SignatureError::Malformed("\"publicKey\" is not 64 hex digits of an ed25519 key".into()))?;
        let expires = block.get("expires").and_then(Value::as_str).unwrap_or_default().to_owned();
        Ok(Credential { app: app.to_owned(), public_key, expires })
    }

    /// Checks a platform manifest's bytes against its detached signature (the `.sig` file's
    /// JSON, if there is one).
    pub fn check_manifest(&self, bytes: &[u8], sig: Option<&str>, now: &str) -> Result<(), SignatureError> {
        let text = std::str::from_utf8(bytes).map_err(|e| SignatureError::Json(e.to_string()))?;
        parse_strict(text)?;
        let Some(sig) = sig else {
            return if self.rules.require_signed { Err(SignatureError::Unsigned) } else { Ok(()) };
        };
        let block = parse_strict(sig)?;
        self.check_block(&block, |k, e| file_message(bytes, k, e), now)
    }
}

#[cfg(test)]
mod tests;
