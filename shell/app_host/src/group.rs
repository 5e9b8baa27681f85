//! A host shared by several apps (a process group): one GTK loop, one WebKit context (so one
//! network process), and a web process of its own for each app's view.
//!
//! Its standard input is a `SOCK_SEQPACKET` control socket: the shell sends
//! `protocol::wire::GroupMsg` records on it, an `Open` carrying the view's own connection as
//! `SCM_RIGHTS`. Each view then speaks over its connection exactly as a host of its own does,
//! and goes when the shell closes it; the host goes when the control socket closes. Pings on the
//! control socket are answered from GTK's thread, which every view needs: a stuck loop is a
//! stuck group, and the shell restarts the group.

use std::cell::RefCell;
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use app_host::HostConnection;
use protocol::wire::{GroupMsg, GroupReply, MAX_GROUP_RECORD};
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer, SendFlags};
use wry::WebContext;

use crate::to_shell::Writer;
use crate::webview::{Inbound, Options, Schemes, ViewId, open_view};

/// Turns a view's arguments (as for a host of its own) into its options.
pub(crate) type ParseView = fn(&[String]) -> Result<Options>;

thread_local! {
    /// The group's web context and its schemes, made with the first view (on GTK's thread).
    static CONTEXT: RefCell<Option<(WebContext, Schemes)>> = const { RefCell::new(None) };
}

/// Runs the group until the shell closes its control socket.
pub(crate) fn run(data_dir: Option<PathBuf>, parse: ParseView) -> Result<()> {
    crate::webview::no_core_dumps();
    let control: Arc<OwnedFd> = Arc::new(std::io::stdin().as_fd().try_clone_to_owned().context("duplicating stdin")?);
    gtk::init().context("starting GTK (is DISPLAY set to an X11 display?)")?;
    let reader = Arc::clone(&control);
    // When the shell last pinged the group (every second): a shell silent for long is frozen,
    // and a host with no view left would otherwise wait for it for ever.
    let heard = Arc::new(AtomicU64::new(0));
    let started = std::time::Instant::now();
    let ms = move || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    {
        let heard = Arc::clone(&heard);
        let timeout = crate::webview::shell_timeout();
        std::thread::Builder::new().name("group-watch".into()).spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                let silent = ms().saturating_sub(heard.load(Ordering::Relaxed));
                if std::time::Duration::from_millis(silent) > timeout {
                    tracing::error!("the shell has not pinged the group for {silent} ms; leaving");
                    std::process::exit(1);
                }
            }
        })?;
    }
    std::thread::Builder::new().name("group-control".into()).spawn(move || {
        let heard = || heard.store(ms(), Ordering::Relaxed);
        match read_control(&reader, data_dir.as_deref(), parse, &heard) {
            Ok(()) => tracing::info!("the shell closed the group's control socket; leaving"),
            Err(e) => tracing::error!("the group's control socket failed: {e:#}; leaving"),
        }
        std::process::exit(0);
    })?;
    gtk::main();
    Ok(())
}

/// Reads the shell's records until the socket closes.
fn read_control(
    control: &Arc<OwnedFd>,
    data_dir: Option<&std::path::Path>,
    parse: ParseView,
    heard: &dyn Fn(),
) -> Result<()> {
    let next_view = AtomicU64::new(1);
    let mut buf = vec![0u8; MAX_GROUP_RECORD];
    loop {
        let Some((msg, fds)) = receive(control, &mut buf)? else { return Ok(()) };
        heard();
        match msg {
            Ok(GroupMsg::Ping { nonce }) => {
                let control = Arc::clone(control);
                gtk::glib::MainContext::default().invoke(move || reply(&control, &GroupReply::Pong { nonce }));
            }
            Ok(GroupMsg::Open { label, args }) => {
                let id = next_view.fetch_add(1, Ordering::Relaxed);
                let mut fds = fds.into_iter();
                let opened = match (fds.next(), fds.next()) {
                    (Some(fd), None) => parse(&args).map(|opts| (fd, opts)),
                    (None, _) => Err(anyhow::anyhow!("the record carries no connection")),
                    (Some(_), Some(_)) => Err(anyhow::anyhow!("the record carries more than one connection")),
                };
                match opened {
                    Ok((fd, opts)) => start_view(id, label, opts, fd, Arc::clone(control), data_dir.map(Into::into)),
                    Err(e) => {
                        tracing::warn!(%label, "refused to open a view: {e:#}");
                        reply(control, &GroupReply::Refused { label, error: format!("{e:#}") });
                    }
                }
            }
            Err(e) => tracing::warn!("ignored a control record: {e}"),
        }
    }
}

/// Greets the shell on the view's connection (on a thread of its own: the welcome may take a
/// moment), then opens the view on GTK's thread.
fn start_view(id: ViewId, label: String, opts: Options, fd: OwnedFd, control: Arc<OwnedFd>, data_dir: Option<PathBuf>) {
    let spawned = std::thread::Builder::new().name(format!("view-{id}")).spawn(move || {
        let connected = HostConnection::new(UnixStream::from(fd))
            .map_err(anyhow::Error::from)
            .and_then(|conn| crate::webview::connect(conn, id, true));
        match connected {
            Ok((writer, in_rx)) => {
                gtk::glib::MainContext::default()
                    .invoke(move || open_on_gtk(id, &label, &opts, &writer, in_rx, &control, data_dir));
            }
            Err(e) => {
                tracing::warn!(%label, "could not connect a view: {e:#}");
                reply(&control, &GroupReply::Refused { label, error: format!("{e:#}") });
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!("could not start a view's thread: {e}");
    }
}

/// Opens the view in the group's context (made with the first view).
fn open_on_gtk(
    id: ViewId,
    label: &str,
    opts: &Options,
    writer: &Writer,
    in_rx: flume::Receiver<Inbound>,
    control: &Arc<OwnedFd>,
    data_dir: Option<PathBuf>,
) {
    let gone = label.to_owned();
    let closed: Box<dyn FnOnce()> = Box::new(move || tracing::info!(label = %gone, "view closed"));
    let opened = CONTEXT.with_borrow_mut(|c| {
        let (context, schemes) = c.get_or_insert_with(|| (WebContext::new(data_dir), Schemes::default()));
        open_view(context, schemes, id, opts, writer, in_rx, Some(closed))
    });
    match opened {
        Ok(_view) => tracing::info!(%label, view = id, "view opened"),
        Err(e) => {
            tracing::warn!(%label, "could not open a view: {e:#}");
            reply(control, &GroupReply::Refused { label: label.to_owned(), error: format!("{e:#}") });
            // The view's connection ends, and the shell sees it go.
            writer.shutdown();
        }
    }
}

/// Sends the shell one record.
fn reply(control: &OwnedFd, msg: &GroupReply) {
    let mut bytes = Vec::new();
    if let Err(e) = protocol::wire::encode(msg, &mut bytes) {
        tracing::warn!("could not encode a control reply: {e}");
        return;
    }
    let mut none = SendAncillaryBuffer::new(&mut []);
    if let Err(e) = rustix::net::sendmsg(control, &[IoSlice::new(&bytes)], &mut none, SendFlags::NOSIGNAL) {
        tracing::warn!("could not answer the shell: {e}");
    }
}

/// One record and the descriptors it carried; `None` when the shell has closed the socket.
/// (A record that does not decode is given as its error, its descriptors closed.)
#[expect(clippy::type_complexity, reason = "a record, its decoding and its descriptors")]
fn receive(
    control: &OwnedFd,
    buf: &mut [u8],
) -> Result<Option<(Result<GroupMsg, protocol::wire::WireError>, Vec<OwnedFd>)>> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut ancillary = RecvAncillaryBuffer::new(&mut space);
    let got = loop {
        match rustix::net::recvmsg(control, &mut [IoSliceMut::new(buf)], &mut ancillary, RecvFlags::CMSG_CLOEXEC) {
            Err(rustix::io::Errno::INTR) => {}
            other => break other.context("reading the control socket")?,
        }
    };
    let mut fds = Vec::new();
    for message in ancillary.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    if got.bytes == 0 && fds.is_empty() {
        return Ok(None);
    }
    if got.flags.intersects(ReturnFlags::TRUNC | ReturnFlags::CTRUNC) {
        let why = format!("a record over {} bytes, or with more than 4 descriptors", buf.len());
        return Ok(Some((Err(protocol::wire::WireError(why)), fds)));
    }
    let bytes = buf.get(..got.bytes).unwrap_or_default();
    Ok(Some((protocol::wire::decode::<GroupMsg>(bytes), fds)))
}
