//! The server: one request per connection, answered from the shell's routes, with a deadline,
//! a cap on the head and on connections at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::http::{self, HttpError, MAX_HEAD, Method, Request, Response};

/// What the shell answers: a path to a response, or `None` for 404.
pub type Routes = Arc<dyn Fn(&Request) -> Option<Response> + Send + Sync>;

/// How long a client has to send its request and take the answer.
const DEADLINE: Duration = Duration::from_secs(5);
/// Connections served at once; more wait in the listen queue.
const AT_ONCE: usize = 16;

/// Serves `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, routes: Routes) {
    let slots = Arc::new(tokio::sync::Semaphore::new(AT_ONCE));
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else { return };
        match listener.accept().await {
            Ok((stream, _)) => {
                let routes = Arc::clone(&routes);
                tokio::spawn(async move {
                    if let Err(e) = tokio::time::timeout(DEADLINE, answer(stream, &routes)).await {
                        tracing::debug!("a telemetry client was too slow: {e}");
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!("the telemetry endpoint could not accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn answer(mut stream: TcpStream, routes: &Routes) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let parsed = loop {
        if let Some(end) = http::head_end(&buf) {
            break http::parse_request(&buf[..end]);
        }
        if buf.len() > MAX_HEAD {
            break Err(HttpError::TooLarge);
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let (response, head_only) = match parsed {
        Ok(request) => {
            let head_only = request.method == Method::Head;
            // A route may wait a moment (the window's frame counts): off the async workers.
            let routes = Arc::clone(routes);
            let answered = tokio::task::spawn_blocking(move || routes(&request)).await;
            let response = match answered {
                Ok(found) => found.unwrap_or_else(|| Response::text(404, "not found\n")),
                Err(e) => {
                    tracing::error!("a telemetry route failed: {e}");
                    Response::text(500, "the shell could not answer\n")
                }
            };
            (response, head_only)
        }
        Err(e) => (Response::text(e.status(), format!("{e}\n")), false),
    };
    let _ = stream.write_all(&response.to_bytes(head_only)).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests;
