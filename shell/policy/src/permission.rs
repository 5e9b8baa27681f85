//! A permission: a name and an optional scope (`bus.publish:prices.#`,
//! `fdc3.raiseIntent:ViewChart`, `navigate:https://news.example`, `clipboard.read`), parsed and
//! checked, and whether one permission covers another. Topic scopes are compared as topic
//! patterns (containment for subscriptions), origins parsed, names exactly or by `*`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::urls::normal_origin;

/// How a permission's scope is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    /// No scope.
    None,
    /// A topic pattern (`prices.#`); requests name a topic.
    Topic,
    /// A topic pattern; requests name a pattern, which the rule's must contain.
    Pattern,
    /// A name (an intent, a service, an app channel); `*` in a rule means any.
    Name,
    /// An origin (`https://news.example:8443`).
    Origin,
}

/// Every permission there is, with how its scope is read.
pub const PERMISSIONS: &[(&str, ScopeKind)] = &[
    ("bus.publish", ScopeKind::Topic),
    ("bus.subscribe", ScopeKind::Pattern),
    ("bus.serve", ScopeKind::Name),
    ("fdc3.broadcast", ScopeKind::None),
    ("fdc3.raiseIntent", ScopeKind::Name),
    ("fdc3.open", ScopeKind::None),
    ("fdc3.appChannel", ScopeKind::Name),
    ("navigate", ScopeKind::Origin),
    ("window.open", ScopeKind::None),
    ("clipboard.read", ScopeKind::None),
    ("clipboard.write", ScopeKind::None),
    ("notifications", ScopeKind::None),
    ("geolocation", ScopeKind::None),
    ("camera", ScopeKind::None),
    ("microphone", ScopeKind::None),
    ("secrets", ScopeKind::None),
];

fn kind_of(name: &str) -> Option<ScopeKind> {
    PERMISSIONS.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
}

/// A permission, optionally scoped.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Permission {
    /// Its name (one of [`PERMISSIONS`]).
    pub name: String,
    /// Its scope, if it has one.
    pub scope: Option<String>,
}

/// A permission that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PermissionError {
    /// Not one of [`PERMISSIONS`].
    #[error("{0:?} is not a permission")]
    Unknown(String),
    /// A scope on a permission that takes none.
    #[error("{0} takes no scope")]
    NoScope(String),
    /// A scope that does not parse for its permission.
    #[error("{name}: scope {scope:?}: {why}")]
    BadScope {
        /// The permission.
        name: String,
        /// The scope.
        scope: String,
        /// What is wrong.
        why: String,
    },
}

impl Permission {
    /// A permission from its name and scope, checked.
    pub fn new(name: &str, scope: Option<&str>) -> Result<Self, PermissionError> {
        let kind = kind_of(name).ok_or_else(|| PermissionError::Unknown(name.to_owned()))?;
        let bad = |why: String| PermissionError::BadScope {
            name: name.to_owned(),
            scope: scope.unwrap_or_default().to_owned(),
            why,
        };
        let scope = match (kind, scope) {
            (_, None) => None,
            (ScopeKind::None, Some(_)) => return Err(PermissionError::NoScope(name.to_owned())),
            (ScopeKind::Topic | ScopeKind::Pattern, Some(s)) => {
                broker::Pattern::parse(s).map_err(|e| bad(e.to_string()))?;
                Some(s.to_owned())
            }
            (ScopeKind::Name, Some(s)) => {
                if s.is_empty() || s.chars().count() > 256 || s.chars().any(char::is_control) {
                    return Err(bad("not a name".to_owned()));
                }
                Some(s.to_owned())
            }
            (ScopeKind::Origin, Some(s)) => {
                Some(normal_origin(s).ok_or_else(|| bad("not an http(s) origin (scheme://host[:port])".to_owned()))?)
            }
        };
        Ok(Self { name: name.to_owned(), scope })
    }

    /// Whether this permission, as a rule or grant, covers `request`.
    pub fn covers(&self, request: &Permission) -> bool {
        if self.name != request.name {
            return false;
        }
        let (Some(mine), Some(theirs)) = (&self.scope, &request.scope) else {
            // An unscoped rule covers every scope; a scoped rule does not cover an unscoped request.
            return self.scope.is_none();
        };
        match kind_of(&self.name) {
            Some(ScopeKind::Topic) => match (broker::Pattern::parse(mine), broker::Topic::parse(theirs)) {
                (Ok(p), Ok(t)) => p.matches(&t),
                _ => false,
            },
            Some(ScopeKind::Pattern) => pattern_contains(mine, theirs),
            Some(ScopeKind::Name) => mine == "*" || mine == theirs,
            Some(ScopeKind::Origin) => normal_origin(mine).is_some() && normal_origin(mine) == normal_origin(theirs),
            Some(ScopeKind::None) | None => false,
        }
    }
}

/// Whether every topic `inner` matches is matched by `outer` (both `.`-separated patterns
/// with `*` for one segment and `#` for any number).
pub fn pattern_contains(outer: &str, inner: &str) -> bool {
    fn go(o: &[&str], i: &[&str]) -> bool {
        match (o.split_first(), i.split_first()) {
            (None, None) => true,
            // An outer `#` takes nothing more, or one more of inner's segments (an inner `#`
            // included) and stays.
            (Some((&"#", rest)), _) => go(rest, i) || i.split_first().is_some_and(|(_, irest)| go(o, irest)),
            // An inner `#` matches any number of segments, which nothing but `#` covers.
            (_, Some((&"#", _))) | (None, Some(_)) | (Some(_), None) => false,
            (Some((&"*", orest)), Some((_, irest))) => go(orest, irest),
            (Some((&a, orest)), Some((&b, irest))) => a == b && b != "*" && go(orest, irest),
        }
    }
    let (o, i): (Vec<&str>, Vec<&str>) = (outer.split('.').collect(), inner.split('.').collect());
    broker::Pattern::parse(outer).is_ok() && broker::Pattern::parse(inner).is_ok() && go(&o, &i)
}

impl FromStr for Permission {
    type Err = PermissionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some((name, scope)) => Self::new(name, Some(scope)),
            None => Self::new(s, None),
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.scope {
            Some(s) => write!(f, "{}:{s}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl Serialize for Permission {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
