//! Services: request/response between clients, like OpenFin's Channel API. A provider registers
//! a named service with its actions; clients connect and dispatch calls with a timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustc_hash::FxHashSet;

use crate::clock::Timestamp;
use crate::envelope::Payload;
use crate::error::{Error, Result};
use crate::ids::{CallId, ClientId, Target, TraceId};
use crate::service_event::{ProviderEvent, Request, ServiceEvent};
use crate::shared::Shared;
use crate::state::{CallEntry, ServiceEntry};

/// Longest service name accepted.
pub const MAX_SERVICE_NAME: usize = 256;

/// The provider's handle; dropping it unregisters the service and fails its in-flight calls.
#[derive(Debug)]
pub struct ServiceProvider {
    pub(crate) name: Arc<str>,
    pub(crate) client: ClientId,
    pub(crate) rx: flume::Receiver<ProviderEvent>,
    pub(crate) shared: Arc<Shared>,
}

impl ServiceProvider {
    /// The service's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits for the next event.
    pub fn recv(&self) -> Result<ProviderEvent> {
        self.rx.recv().map_err(|_| Error::Disconnected)
    }

    /// Waits up to `timeout` for the next event.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<ProviderEvent>> {
        match self.rx.recv_timeout(timeout) {
            Ok(e) => Ok(Some(e)),
            Err(flume::RecvTimeoutError::Timeout) => Ok(None),
            Err(flume::RecvTimeoutError::Disconnected) => Err(Error::Disconnected),
        }
    }

    /// Waits for the next event without blocking a thread.
    pub async fn recv_async(&self) -> Result<ProviderEvent> {
        self.rx.recv_async().await.map_err(|_| Error::Disconnected)
    }

    /// Answers a call, `Err(reason)` to refuse it. Returns whether the caller was still
    /// waiting (`false` after a timeout or cancel).
    pub fn respond(&self, call: CallId, answer: std::result::Result<Payload, String>) -> bool {
        let mut st = self.shared.state.lock();
        match st.calls.get(&call) {
            Some(entry) if entry.provider == self.client && *entry.service == *self.name => {}
            _ => {
                st.counters.late_responses += 1;
                return false;
            }
        }
        let Some(entry) = st.calls.remove(&call) else { return false };
        entry.reply.try_send(answer.map_err(|reason| Error::Rejected { reason })).is_ok()
    }
}

impl Drop for ServiceProvider {
    fn drop(&mut self) {
        let mut st = self.shared.state.lock();
        let ours = st.services.get(&*self.name).is_some_and(|s| s.provider == self.client);
        if ours {
            st.remove_service(&self.name);
        }
    }
}

/// A client's connection to one service; dropping it tells the provider.
#[derive(Debug)]
pub struct ServiceClient {
    pub(crate) service: Arc<str>,
    pub(crate) provider: ClientId,
    pub(crate) client: ClientId,
    pub(crate) conn: u64,
    pub(crate) events: flume::Receiver<ServiceEvent>,
    pub(crate) shared: Arc<Shared>,
}

impl ServiceClient {
    /// The service's name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Events about the provider.
    pub fn events(&self) -> &flume::Receiver<ServiceEvent> {
        &self.events
    }

    /// Sends a call; the answer arrives on the returned [`PendingCall`] or it fails with
    /// [`Error::Timeout`] after `timeout`.
    pub fn dispatch(&self, action: &str, payload: impl Into<Payload>, timeout: Duration) -> Result<PendingCall> {
        let payload = payload.into();
        let mut st = self.shared.state.lock();
        if payload.len() > st.cfg.max_payload_bytes {
            st.counters.rejected_payload += 1;
            return Err(Error::PayloadTooLarge { size: payload.len(), limit: st.cfg.max_payload_bytes });
        }
        let caller_app = st.clients.get(&self.client).ok_or(Error::Disconnected)?.app.clone();
        let service = || self.service.to_string();
        let svc = st.services.get(&*self.service).ok_or_else(|| Error::ProviderDisconnected { service: service() })?;
        if svc.provider != self.provider {
            return Err(Error::ProviderDisconnected { service: service() });
        }
        if !svc.actions.is_empty() && !svc.actions.contains(action) {
            return Err(Error::NoSuchAction { service: service(), action: crate::error::echo(action) });
        }
        let tx = svc.tx.clone();
        if st.calls.len() >= st.cfg.max_calls_in_flight {
            return Err(Error::LimitExceeded {
                what: "service calls in flight".into(),
                limit: st.cfg.max_calls_in_flight,
            });
        }
        let call = CallId(st.fresh());
        let trace_id = TraceId((u128::from(st.cfg.epoch) << 64) | u128::from(call.0) | (1 << 63));
        let request = Request { call, action: action.to_owned(), payload, caller: self.client, caller_app, trace_id };
        if tx.try_send(ProviderEvent::Request(request)).is_err() {
            return Err(Error::QueueFull { target: Target::Client(self.provider) });
        }
        let (reply, rx) = flume::bounded(1);
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let deadline: Timestamp = st.now().plus(timeout);
        st.calls.insert(
            call,
            CallEntry {
                service: Arc::clone(&self.service),
                caller: self.client,
                provider: self.provider,
                reply,
                deadline,
                timeout_ms,
            },
        );
        st.counters.calls += 1;
        st.deadlines.notify(1);
        Ok(PendingCall {
            call,
            rx,
            deadline: crate::clock::deadline_after(timeout),
            timeout_ms,
            shared: Arc::clone(&self.shared),
        })
    }

    /// Dispatches and waits for the answer.
    pub fn call(&self, action: &str, payload: impl Into<Payload>, timeout: Duration) -> Result<Payload> {
        self.dispatch(action, payload, timeout)?.wait()
    }
}

impl Drop for ServiceClient {
    fn drop(&mut self) {
        let mut st = self.shared.state.lock();
        if let Some(svc) = st.services.get_mut(&*self.service)
            && svc.clients.remove(&self.conn).is_some()
        {
            let _ = svc.tx.try_send(ProviderEvent::Disconnected(self.client));
        }
    }
}

/// A call waiting for its answer. Dropping it cancels the call.
#[derive(Debug)]
pub struct PendingCall {
    call: CallId,
    rx: flume::Receiver<Result<Payload>>,
    deadline: Instant,
    timeout_ms: u64,
    shared: Arc<Shared>,
}

impl PendingCall {
    /// The call's id.
    pub fn id(&self) -> CallId {
        self.call
    }

    /// Blocks until the answer or the deadline.
    pub fn wait(self) -> Result<Payload> {
        match self.rx.recv_deadline(self.deadline) {
            Ok(answer) => answer,
            Err(flume::RecvTimeoutError::Timeout) => {
                let mut st = self.shared.state.lock();
                if st.calls.remove(&self.call).is_some() {
                    st.counters.calls_timed_out += 1;
                }
                drop(st);
                // The answer may have landed between the timeout and the lock.
                self.rx.try_recv().unwrap_or(Err(Error::Timeout { after_ms: self.timeout_ms }))
            }
            Err(flume::RecvTimeoutError::Disconnected) => Err(Error::Timeout { after_ms: self.timeout_ms }),
        }
    }

    /// Waits for the answer without blocking a thread; the broker's `sweep` enforces the
    /// deadline.
    pub async fn wait_async(self) -> Result<Payload> {
        self.rx.recv_async().await.unwrap_or(Err(Error::Timeout { after_ms: self.timeout_ms }))
    }
}

impl Drop for PendingCall {
    fn drop(&mut self) {
        self.shared.state.lock().calls.remove(&self.call);
    }
}

pub(crate) fn register(
    shared: &Arc<Shared>,
    client: ClientId,
    name: &str,
    actions: &[&str],
) -> Result<ServiceProvider> {
    if name.is_empty() || name.len() > MAX_SERVICE_NAME || name.chars().any(char::is_control) {
        return Err(Error::NoSuchService { service: crate::error::echo(name) });
    }
    let mut st = shared.state.lock();
    if !st.clients.contains_key(&client) {
        return Err(Error::Disconnected);
    }
    if st.services.contains_key(name) {
        return Err(Error::ServiceExists { service: name.to_owned() });
    }
    let (tx, rx) = flume::bounded(st.cfg.service_queue_capacity.max(1));
    let name: Arc<str> = Arc::from(name);
    let actions: FxHashSet<Box<str>> = actions.iter().map(|a| Box::from(*a)).collect();
    st.services.insert(Arc::clone(&name), ServiceEntry { provider: client, actions, tx, clients: Default::default() });
    if let Some(c) = st.clients.get_mut(&client) {
        c.services.push(Arc::clone(&name));
    }
    Ok(ServiceProvider { name, client, rx, shared: Arc::clone(shared) })
}

pub(crate) fn connect(shared: &Arc<Shared>, client: ClientId, name: &str) -> Result<ServiceClient> {
    let mut st = shared.state.lock();
    if !st.clients.contains_key(&client) {
        return Err(Error::Disconnected);
    }
    let conn = st.fresh();
    let svc = st.services.get_mut(name).ok_or_else(|| Error::NoSuchService { service: crate::error::echo(name) })?;
    let (etx, events) = flume::bounded(4);
    svc.clients.insert(conn, (client, etx));
    let _ = svc.tx.try_send(ProviderEvent::Connected(client));
    let provider = svc.provider;
    let service = svc_name(&st, name);
    Ok(ServiceClient { service, provider, client, conn, events, shared: Arc::clone(shared) })
}

fn svc_name(st: &crate::state::State, name: &str) -> Arc<str> {
    st.services.get_key_value(name).map_or_else(|| Arc::from(name), |(k, _)| Arc::clone(k))
}
