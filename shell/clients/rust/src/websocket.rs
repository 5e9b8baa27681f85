//! The endpoint's WebSocket as frames: text messages carried to and from a socketpair whose
//! other end speaks the usual u32-framed protocol. Both ends of a WebSocket use it: this
//! client, and the shell (which serves the other end of its socketpair as a Unix connection).

use futures_util::{SinkExt, StreamExt};
use protocol::native::{self, FrameReader};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio_tungstenite::tungstenite::Message;

/// Carries messages between `ws` and `unix` until either ends: each text message becomes one
/// frame, each frame one text message; anything but text ends it (pings are the library's).
pub async fn bridge<S>(ws: tokio_tungstenite::WebSocketStream<S>, unix: UnixStream)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut ws_out, mut ws_in) = ws.split();
    let (mut rd, mut wr) = unix.into_split();
    let inbound = async {
        let mut frame = Vec::new();
        while let Some(Ok(msg)) = ws_in.next().await {
            match msg {
                Message::Text(text) => {
                    frame.clear();
                    native::push_frame(text.as_str(), &mut frame);
                    if wr.write_all(&frame).await.is_err() {
                        break;
                    }
                }
                Message::Binary(_) | Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = wr.shutdown().await;
    };
    let outbound = async {
        let mut reader = FrameReader::new();
        let mut chunk = vec![0u8; 64 * 1024];
        'read: loop {
            let n = match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            reader.feed(&chunk[..n]);
            while let Ok(Some(text)) = reader.next_frame() {
                if ws_out.send(Message::text(text)).await.is_err() {
                    break 'read;
                }
            }
        }
        let _ = ws_out.close().await;
    };
    tokio::select! {
        () = inbound => {}
        () = outbound => {}
    }
}
