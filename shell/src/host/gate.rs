//! What the transport and the supervisor ask before an app may do something: the [`Gate`]
//! (the shell's permission service implements it), its answer [`Access`], and the permission
//! each bus message ([`crate::host::ipc`]) or FDC3 request ([`fdc3_permission`]) needs: both are
//! checked in the same place, where the app's message enters the shell.

/// The answer to a permission check.
pub enum Access {
    /// Go ahead.
    Allow,
    /// Refused; the reason is told to the app.
    Deny(String),
    /// The user is being asked: the future gives the answer.
    Ask(Answer),
}

/// The user's answer to come: `true` to allow.
pub type Answer = std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>;

/// Holds a request until the user has answered every one of `answers`, without holding up
/// anything else: `then(true)` runs once all allowed it, `then(false)` once any refused.
pub fn hold<F, Fut>(answers: Vec<Answer>, then: F)
where
    F: FnOnce(bool) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut allowed = true;
        for answer in answers {
            allowed &= answer.await;
        }
        then(allowed).await;
    });
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Allow => f.write_str("Allow"),
            Self::Deny(why) => f.debug_tuple("Deny").field(why).finish(),
            Self::Ask(_) => f.write_str("Ask"),
        }
    }
}

/// Decides whether an app instance may do something (the shell's permission service).
pub trait Gate: Send + Sync + std::fmt::Debug {
    /// Whether `instance` of `app` may have `permission`.
    fn check(&self, instance: u64, app: &str, permission: &policy::Permission) -> Access;

    /// Something `instance` of `app` tried was refused for another reason than a permission (a
    /// blocked navigation, a malformed or forged message): for the record.
    fn refused(&self, instance: u64, app: &str, action: &str, object: &str) {
        let _ = (instance, app, action, object);
    }

    /// What checks the credentials of apps started outside the shell: the admin policy's
    /// signing keys, if it names any (none: such apps are refused).
    fn credentials(&self) -> Option<policy::signing::Checker> {
        None
    }
}

/// The permission an FDC3 request needs, if any: broadcasting, raising an intent, opening an
/// app and using an app channel are permissions; listening and asking about things are not.
pub fn fdc3_permission(request: &broker::fdc3::Request) -> Option<policy::Permission> {
    use broker::fdc3::RequestType;
    let p = &request.payload;
    let scope = |key: &str| p.get(key).and_then(|v| v.as_str());
    match request.kind {
        RequestType::Broadcast => policy::Permission::new("fdc3.broadcast", None),
        RequestType::RaiseIntent => policy::Permission::new("fdc3.raiseIntent", scope("intent")),
        RequestType::RaiseIntentForContext => policy::Permission::new("fdc3.raiseIntent", None),
        RequestType::Open => policy::Permission::new("fdc3.open", None),
        RequestType::GetOrCreateChannel => policy::Permission::new("fdc3.appChannel", scope("channelId")),
        _ => return None,
    }
    .ok()
}
