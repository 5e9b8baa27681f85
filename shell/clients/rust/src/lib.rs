//! A native app's client for the Tessera endpoint (async, on tokio).
//!
//! A native app listed in the desk's manifest (`"type": "native"`) is started by the shell with
//! `TESSERA_ENDPOINT` (the socket) and `TESSERA_LAUNCH_TOKEN` (a one-time token) in its
//! environment; [`Client::from_env`] connects with them, and the connection is that app for
//! good: the admin policy's permissions, the consent prompts, the rate limit and the audit log
//! apply to it as to a web app. The protocol is in `docs/native-endpoint.md`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tessera_client::ClientError> {
//! use serde_json::json;
//! let client = tessera_client::Client::from_env().await?;
//! let mut prices = client.subscribe("prices.#").await?;
//! client.publish("orders.new", &json!({"ticker": "AAPL", "qty": 100})).await?;
//! while let Some(m) = prices.recv().await {
//!     println!("{} {}", m.topic(), m.data());
//! }
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod client;
mod fdc3;
pub mod websocket;

pub use crate::client::{Call, Client, ClientError, Direct, Message, Refusal, Service, SubscribeOptions, Subscription};
pub use crate::fdc3::{ContextListener, Fdc3, Fdc3Error, IntentEvent, IntentListener, IntentResolution};
