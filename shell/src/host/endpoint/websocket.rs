//! The endpoint over a WebSocket on loopback (`endpoint.websocket` in the admin policy), for
//! apps that cannot reach the Unix socket. The same messages, one per WebSocket text message;
//! only credentials are taken (a launch token names a process, which a TCP peer cannot be shown
//! to be), and no request from a web page (one with an `Origin` header: any site a browser
//! visits could otherwise try) is upgraded.
//!
//! Each connection is adapted onto a socketpair (`tessera_client::websocket::bridge`, the
//! adapter both ends of a WebSocket use), whose other end the endpoint's own handshake and
//! connection code serve as they serve the Unix socket: the transport is the adapter's only
//! business.

use std::sync::Arc;

use protocol::native::MAX_FRAME;
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::{Endpoint, HELLO_TIMEOUT, Peer};
use crate::host::instance::SharedGate;

/// Accepts WebSocket connections on `listener` until the runtime stops.
pub fn serve(endpoint: Arc<Endpoint>, listener: TcpListener, gate: SharedGate) {
    tokio::spawn(async move {
        loop {
            let tcp = match listener.accept().await {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    tracing::warn!("the native endpoint's WebSocket could not accept a connection: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let (endpoint, gate) = (Arc::clone(&endpoint), Arc::clone(&gate));
            tokio::spawn(async move { connection(&endpoint, tcp, &gate).await });
        }
    });
}

/// Refuses what a browser sends (an `Origin` header): a web page is not a native app.
#[expect(clippy::result_large_err, reason = "the callback's signature is tungstenite's")]
fn no_pages(req: &Request, resp: Response) -> Result<Response, ErrorResponse> {
    if req.headers().contains_key(http::header::ORIGIN) {
        let mut refusal = ErrorResponse::new(Some("a web page may not connect to the native endpoint".to_owned()));
        *refusal.status_mut() = http::StatusCode::FORBIDDEN;
        return Err(refusal);
    }
    Ok(resp)
}

async fn connection(endpoint: &Endpoint, tcp: TcpStream, gate: &SharedGate) {
    let peer = tcp.peer_addr().map_or_else(|_| "?".to_owned(), |a| a.to_string());
    let config = WebSocketConfig::default().max_message_size(Some(MAX_FRAME)).max_frame_size(Some(MAX_FRAME));
    let upgrade = tokio_tungstenite::accept_hdr_async_with_config(tcp, no_pages, Some(config));
    let ws = match tokio::time::timeout(HELLO_TIMEOUT, upgrade).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::warn!(%peer, "refused a WebSocket to the native endpoint: {e}");
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, "a WebSocket to the native endpoint did not finish its upgrade in time");
            return;
        }
    };
    let (ours, theirs) = match UnixStream::pair() {
        Ok(pair) => pair,
        Err(e) => {
            tracing::error!("no socketpair for a WebSocket: {e}");
            return;
        }
    };
    tokio::spawn(tessera_client::websocket::bridge(ws, theirs));
    endpoint.handshake(ours, gate, Peer::Remote).await;
}
