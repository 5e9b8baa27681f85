//! The control socket's server: one JSON request per line from `tessera ctl` (and the tests),
//! answered from the running shell; `subscribe` streams bus messages until the shell quits.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use broker::{MessageOptions, QueuePolicy, SubscribeOptions};
use compositor::Command as UiCommand;
use serde_json::{Value, json};
use shell::ctl::{MAX_REQUEST, Request, Response};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::ui::push_grants;
use super::{Shell, workspace};

pub(super) async fn serve_ctl(shell: Arc<Shell>, listener: UnixListener, path: std::path::PathBuf) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                // Only the user who runs the shell may drive it, whatever the socket's mode.
                if let Err(e) = shell::ctl::runtime_dir::check_peer(&stream, &path) {
                    tracing::warn!("refused a control connection: {e}");
                    continue;
                }
                let shell = Arc::clone(&shell);
                tokio::spawn(async move {
                    if let Err(e) = ctl_connection(shell, stream).await {
                        tracing::debug!("control connection ended: {e:#}");
                    }
                });
            }
            Err(e) => {
                tracing::error!("control socket failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

pub(super) async fn write_line(w: &mut tokio::net::unix::OwnedWriteHalf, v: &impl serde::Serialize) -> Result<()> {
    let mut line = serde_json::to_vec(v)?;
    line.push(b'\n');
    w.write_all(&line).await?;
    Ok(())
}

pub(super) async fn ctl_connection(shell: Arc<Shell>, stream: UnixStream) -> Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut line = Vec::new();
    let mut rd = BufReader::new(rd).take(MAX_REQUEST as u64);
    rd.read_until(b'\n', &mut line).await?;
    let request: Request = match serde_json::from_slice(&line) {
        Ok(r) => r,
        Err(e) => return write_line(&mut wr, &Response::err(format!("bad request: {e}"))).await,
    };
    if let Request::Subscribe { pattern } = request {
        return stream_messages(&shell, &pattern, wr).await;
    }
    let response = match handle(&shell, request).await {
        Ok(v) => Response::ok(v),
        Err(e) => Response::err(format!("{e:#}")),
    };
    write_line(&mut wr, &response).await
}

pub(super) async fn handle(shell: &Shell, request: Request) -> Result<Value> {
    Ok(match request {
        Request::Apps => serde_json::to_value(shell.supervisor.status())?,
        Request::Launch { app } => json!({ "instance": shell.launch(&app)? }),
        Request::Close { instance } => {
            if !shell.supervisor.close(instance).await {
                bail!("no app instance {instance}");
            }
            json!({ "closed": instance })
        }
        Request::Eval { instance, js, timeout_ms } => {
            let text = shell.supervisor.eval(instance, &js, Duration::from_millis(timeout_ms)).await?;
            serde_json::from_str::<Value>(&text).context("the page's answer is not JSON")?
        }
        Request::Publish { topic, data, durable } => {
            let client = shell.broker.connect(None);
            let bytes = serde_json::to_vec(&data)?;
            let opts = if durable { MessageOptions::default().durable() } else { MessageOptions::default() };
            let sent = client.publish(&topic, bytes, opts)?;
            if let Some(commit) = &sent.commit {
                commit.wait_async().await.context("the journal did not commit the message")?;
            }
            json!({ "seq": sent.seq, "delivered": sent.delivered })
        }
        Request::Screenshot { path, window } => screenshot_to(shell, &path, window).await?,
        Request::Quit => {
            // The session is saved while its apps still run.
            if *shell.restored.borrow()
                && let Err(e) = workspace::save(shell, workspace::AUTOSAVE).await
            {
                tracing::warn!("could not save the session: {e:#}");
            }
            let _ = shell.quit.send(true);
            json!("quitting")
        }
        Request::LayoutGet => workspace::describe(shell).await?,
        Request::LayoutSave { name } => workspace::save(shell, &name).await?,
        Request::LayoutRestore { name } => workspace::restore_named(shell, &name).await?,
        Request::LayoutList => workspace::list(shell).await?,
        Request::Prompts => serde_json::to_value(shell.permissions.prompts())?,
        Request::Health => super::telemetry::health(shell).1,
        Request::Link => super::link::describe(shell),
        Request::Prompt { id, answer } => {
            let answer = match answer.as_str() {
                "allow-once" => compositor::ConsentAnswer::AllowOnce,
                "allow-always" => compositor::ConsentAnswer::AllowAlways,
                "deny" => compositor::ConsentAnswer::Deny,
                other => bail!("{other:?} is not allow-once, allow-always or deny"),
            };
            if !shell.permissions.answer(id, answer) {
                bail!("no prompt {id} is waiting (see `tessera ctl prompts`)");
            }
            shell.ui.send(UiCommand::CancelDialog { id });
            push_grants(shell);
            json!({ "answered": id })
        }
        Request::Grants => serde_json::to_value(shell.profile.grants(None)?)?,
        Request::GrantsRevoke { app, permission } => {
            let p: policy::Permission =
                permission.parse().with_context(|| format!("{permission:?} is not a permission"))?;
            if !shell.profile.revoke_grant(&app, &p.name, p.scope.as_deref())? {
                bail!("{app} has no remembered answer for {p}");
            }
            shell.permissions.grants_changed();
            shell.permissions.record("user", Some(&app), "permission.revoke", &p.to_string(), "revoked", json!({}));
            push_grants(shell);
            json!({ "revoked": { "app": app, "permission": p.to_string() } })
        }
        Request::Subscribe { .. } => bail!("subscribe streams; it is handled apart"),
    })
}

pub(super) async fn screenshot_to(shell: &Shell, path: &Path, window: Option<compositor::WindowNo>) -> Result<Value> {
    let xid = shell.windows.lock().get(&window.unwrap_or(compositor::MAIN_WINDOW)).copied();
    let Some(xid) = xid else {
        match window {
            Some(no) if no != compositor::MAIN_WINDOW => bail!("there is no shell window {no} (see `ctl layout get`)"),
            _ => bail!("the shell window is not up yet"),
        }
    };
    let target = path.to_owned();
    let (w, h) = tokio::task::spawn_blocking(move || compositor::x11::capture_png(xid, &target)).await??;
    Ok(json!({ "path": path, "width": w, "height": h }))
}

pub(super) async fn stream_messages(
    shell: &Shell,
    pattern: &str,
    mut wr: tokio::net::unix::OwnedWriteHalf,
) -> Result<()> {
    let client = shell.broker.connect(None);
    let subscription =
        match client.subscribe(pattern, SubscribeOptions::default().capacity(4096).policy(QueuePolicy::DropOldest)) {
            Ok(s) => s,
            Err(e) => return write_line(&mut wr, &Response::err(format!("subscribe {pattern}: {e}"))).await,
        };
    write_line(&mut wr, &Response::ok(json!({ "subscribed": pattern }))).await?;
    let mut quit = shell.quit.subscribe();
    loop {
        tokio::select! {
            d = subscription.recv_async() => {
                let Some(d) = d else { return Ok(()) };
                let e = &d.envelope;
                let data = serde_json::from_slice::<Value>(&e.payload)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&e.payload).into_owned()));
                let line = json!({
                    "topic": e.topic.as_str(), "data": data, "seq": e.seq,
                    "timestamp": e.timestamp.to_string(), "sender": e.sender.client.0,
                    "app": e.sender.app.as_ref().map(ToString::to_string),
                });
                write_line(&mut wr, &line).await?;
            }
            () = async { let _ = quit.wait_for(|q| *q).await; } => return Ok(()),
        }
    }
}
