//! Permissions: what an app may do beyond its own page, and who decides.
//!
//! A permission is a name and an optional scope (`bus.publish:prices.#`,
//! `fdc3.raiseIntent:ViewChart`, `navigate:https://news.example`, `clipboard.read`). A request
//! is decided by the first source that has an answer, strongest first:
//!
//! 1. the admin policy (IT): rules per app and per role that deny, require a prompt, or allow
//!    (deny wins over prompt, prompt over allow); a prompt the policy requires is answered by
//!    the user's remembered answer if there is one;
//! 2. the user's remembered answers (grants);
//! 3. what the app's manifest declares it may ask for: the user is asked;
//! 4. otherwise: denied.
//!
//! A rule's scope covers a request's when it is absent (every scope), equal, a topic pattern
//! matching the requested topic (`bus.publish`) or containing the requested pattern
//! (`bus.subscribe`), or `*` for names (intents, services, app channels). Origins are
//! compared parsed, and never by wildcard.
//!
//! The crate also holds what the shell trusts and where apps may go: signed records and files
//! ([`signing`]) and per-app navigation origins ([`origin`]). It knows no UI, no processes and no
//! storage: a policy is data in, decisions out (checked by `tests/it/architecture.rs`). Its
//! modules form no circle: `urls` is a leaf, `signing` and `origin` use it, `permission` uses it,
//! `link` (the desk link's section) and `processes` (which apps share app hosts) are leaves, and
//! `admin` uses `permission`, `signing`, `link` and `processes`.

mod admin;
pub mod link;
pub mod origin;
mod permission;
pub mod processes;
pub mod signing;
mod urls;

pub use crate::admin::{
    AdminPolicy, AuditRules, Decision, EndpointRules, LogRules, PolicyError, PolicyFile, Remembered, Role, Rule,
    Source, Subject, TelemetryRules, TraceRules, UpdateRules, Verdict, load_file, resolve,
};
pub use crate::permission::{PERMISSIONS, Permission, PermissionError, ScopeKind, pattern_contains};
pub use crate::urls::{AppUrl, app_url, local_http, normal_origin};
