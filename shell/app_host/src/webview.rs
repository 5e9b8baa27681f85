//! The app host's real mode: one web app in a wry WebView (WebKitGTK), placed inside the shell's
//! window as an X11 child, talking to the shell over the inherited socket.
//!
//! Threads: GTK's main loop owns the WebView (and never waits on the shell: navigations wait in
//! WebKit for their answers, see `navigation`); a reader thread receives from the shell, answers
//! transport pings itself, and wakes the main loop for the rest with `MainContext::invoke` (a
//! polling timer would add its period to every round trip). Writes to the shell go through one
//! locked connection.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use app_host::HostConnection;
use gtk::prelude::*;
use parking_lot::Mutex;
use protocol::wire::{Bounds, HostMsg, ShellMsg};
use serde_json::{Value, json};
use wry::dpi::{PhysicalPosition, PhysicalSize};
use wry::{NewWindowResponse, PageLoadEvent, Rect, WebContext, WebView, WebViewBuilder};

use crate::foreign::ForeignXid;
use crate::to_shell::{Writer, send, send_page};

/// The preload: the bus (and the channel to the host both use), then `window.fdc3`.
const BUS_JS: &str = include_str!("../../../assets/preload/bus.js");
const FDC3_JS: &str = include_str!("../../../assets/preload/fdc3.js");
/// Messages from the reader thread waiting for the GTK loop.
const INBOX: usize = 4096;
/// How often the host pings the shell, when it has not heard from it in that time.
const SHELL_PING_EVERY: Duration = Duration::from_secs(1);
/// How long without an answer before the host decides the shell is gone (frozen, not just
/// busy: the shell answers pings from its async runtime, not its window thread).
const SHELL_TIMEOUT: Duration = Duration::from_secs(20);

/// How to start.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// The shell window to live in; `None`: a window of its own (for trying a page by hand).
    pub(crate) parent_xid: Option<u64>,
    /// The app's start page.
    pub(crate) url: String,
    /// WebKit's data directory for this app (cookies, local storage, caches).
    pub(crate) data_dir: Option<PathBuf>,
    /// Where the view goes first.
    pub(crate) bounds: Bounds,
    /// Further scripts to run before the page's own, after the bus.
    pub(crate) preload: Vec<PathBuf>,
    /// Where `tessera://` URLs are served from.
    pub(crate) content_root: Option<PathBuf>,
    /// The app's saved state, if the shell kept one.
    pub(crate) state_file: Option<PathBuf>,
    /// The Content-Security-Policy for the app's `tessera://` files.
    pub(crate) csp: Option<String>,
    /// Whether the page's console goes to the shell.
    pub(crate) console: bool,
}

pub(crate) enum Inbound {
    Msg(ShellMsg),
    Closed,
}

pub(crate) use crate::to_shell::ViewId;

/// The view of a host that holds one.
const ONLY_VIEW: ViewId = 0;

thread_local! {
    /// Each view's GTK-side handler, which its reader thread's wake-ups run; it says whether
    /// the view is still open.
    static DRAINS: RefCell<HashMap<ViewId, Box<dyn FnMut() -> bool>>> = RefCell::new(HashMap::new());
}

/// Wakes GTK's loop to apply what came from the shell for `view`.
fn wake(view: ViewId) {
    // At the priority of WebKit's own events, not idle: a page posting without pause would
    // otherwise keep the shell's messages (its probes among them) from ever being applied.
    gtk::glib::MainContext::default().invoke_with_priority(gtk::glib::Priority::DEFAULT, move || {
        // Taken out while it runs: a handler that wakes another view finds the map free.
        let drain = DRAINS.with_borrow_mut(|d| d.remove(&view));
        if let Some(mut f) = drain
            && f()
        {
            DRAINS.with_borrow_mut(|d| {
                d.entry(view).or_insert(f);
            });
        }
    });
}

fn rect(b: Bounds) -> Rect {
    Rect {
        position: PhysicalPosition::new(b.x, b.y).into(),
        size: PhysicalSize::new(b.width.max(1), b.height.max(1)).into(),
    }
}

/// Runs the host until the shell hangs up.
pub(crate) fn run(opts: &Options) -> Result<()> {
    no_core_dumps();
    let conn = HostConnection::from_stdin()?;
    // The reader starts before GTK does: starting GTK can take seconds on a busy desk (its
    // accessibility bus may be started for it), and the shell's pings are answered meanwhile,
    // or a host still starting would be taken for a hung one.
    let (writer, in_rx) = connect(conn, ONLY_VIEW, false)?;
    gtk::init().context("starting GTK (is DISPLAY set to an X11 display?)")?;

    let mut context = WebContext::new(opts.data_dir.clone());
    let schemes = Schemes::default();
    let _view = open_view(&mut context, &schemes, ONLY_VIEW, opts, &writer, in_rx, None)?;
    gtk::main();
    Ok(())
}

/// No core dumps: a page's memory may hold a user's data. (Address-space limits are not
/// usable: WebKit reserves tens of GiB of virtual memory up front; the shell's memory watchdog
/// limits what is really used.)
pub(crate) fn no_core_dumps() {
    let none = rustix::process::Rlimit { current: Some(0), maximum: Some(0) };
    if let Err(e) = rustix::process::setrlimit(rustix::process::Resource::Core, none) {
        tracing::warn!("could not turn core dumps off: {e}");
    }
}

/// Waits for the shell's welcome on `conn` (view `view`'s connection) and starts its threads;
/// gives the writing half and what the reader receives. In a `shared` host the connection's
/// end closes only its view; otherwise it ends the host.
pub(crate) fn connect(
    mut conn: HostConnection,
    view: ViewId,
    shared: bool,
) -> Result<(Writer, flume::Receiver<Inbound>)> {
    match conn.recv()? {
        Some(ShellMsg::Welcome { .. }) => {}
        other => bail!("expected a welcome from the shell, got {other:?}"),
    }
    let socket = conn.socket()?;
    let (writer, reader) = conn.split()?;
    let writer = crate::to_shell::ToShell::start(writer, socket, move || wake(view))?;
    let (in_tx, in_rx) = flume::bounded::<Inbound>(INBOX);
    start_shell_threads(reader, &writer, in_tx, view, shared)?;
    Ok((writer, in_rx))
}

/// The custom schemes of the host's web context, registered once (WebKit takes a scheme once
/// per context) and answered for each view by its id: `tessera://` from that view's own
/// content directory (a view cannot reach another's files, whatever host its URL names) and
/// the preload's pause.
#[derive(Default)]
pub(crate) struct Schemes {
    registered: Cell<bool>,
    content: Arc<Mutex<HashMap<ViewId, Content>>>,
    pauses: crate::pace::Pauses,
}

/// Where a view's `tessera://` files come from (canonical), and their Content-Security-Policy.
type Content = (PathBuf, Option<String>);

impl Schemes {
    /// Adds `view`'s content (if it has any) and pauses (on what `writer` has written) and, on
    /// the context's first view, the schemes.
    fn add<'a>(
        &self,
        builder: WebViewBuilder<'a>,
        view: ViewId,
        opts: &Options,
        writer: &Writer,
    ) -> Result<WebViewBuilder<'a>> {
        if let Some(root) = &opts.content_root {
            let root = root.canonicalize().with_context(|| format!("content directory {}", root.display()))?;
            self.content.lock().insert(view, (root, opts.csp.clone()));
        }
        self.pauses.add(view, writer);
        if self.registered.replace(true) {
            return Ok(builder);
        }
        // The preload's pause (see `bus.js` and `pace`).
        let builder = self.pauses.register(builder);
        let content = Arc::clone(&self.content);
        Ok(builder.with_custom_protocol(crate::content::SCHEME.to_owned(), move |id, request| {
            let found = id.parse::<ViewId>().ok().and_then(|v| content.lock().get(&v).cloned());
            match found {
                Some((root, csp)) => crate::content::serve(&root, &request, csp.as_deref()),
                None => crate::content::not_found(),
            }
        }))
    }
}

/// A view that is open, and what must live as long as it does.
pub(crate) struct OpenView {
    /// The window of its own a view has when the host runs without the shell's window.
    _toplevel: Option<gtk::Window>,
}

/// Opens one view in `context`: the page `opts` names, connected to the shell through
/// `writer` (sending) and `in_rx` (what the reader thread received for it). In a host of its
/// own (`closed` is `None`) the view's end ends GTK's loop; in a shared one, `closed` runs
/// when it has gone, and the shell is told which web process runs the page.
pub(crate) fn open_view(
    context: &mut WebContext,
    schemes: &Schemes,
    id: ViewId,
    opts: &Options,
    writer: &Writer,
    in_rx: flume::Receiver<Inbound>,
    closed: Option<Box<dyn FnOnce()>>,
) -> Result<OpenView> {
    let (token, scripts) = page_scripts(opts)?;

    let webview: Rc<RefCell<Option<WebView>>> = Rc::new(RefCell::new(None));
    let waiting: Rc<RefCell<crate::reply::Waiting>> = Rc::default();
    let inbox = Rc::new(Inbox {
        view: id,
        writer: Arc::clone(writer),
        webview: Rc::clone(&webview),
        token,
        waiting: Rc::clone(&waiting),
        told: Cell::new((Instant::now(), 0)),
        acks: crate::pace::Acks::new(id, writer, &schemes.pauses),
        keys: Rc::default(),
    });
    let navs: Rc<RefCell<crate::navigation::Navigations>> = Rc::default();
    let shared = closed.is_some();
    // Which web processes run now: the one loading the start page is the new one.
    let before = if shared { crate::web_process::children() } else { Default::default() };
    // The start page is loaded once navigations are watched (see below).
    let view_id = id.to_string();
    let mut builder = WebViewBuilder::new_with_web_context(context)
        .with_id(&view_id)
        .with_bounds(rect(opts.bounds))
        .with_focused(false)
        .with_ipc_handler({
            let inbox = Rc::clone(&inbox);
            move |req: wry::http::Request<String>| inbox.posted(req.body())
        })
        .with_new_window_req_handler({
            let (navs, writer) = (Rc::clone(&navs), Arc::clone(writer));
            move |url, _features| {
                crate::navigation::new_window(&navs, &writer, url);
                NewWindowResponse::Deny
            }
        })
        .with_on_page_load_handler({
            let (writer, waiting) = (Arc::clone(writer), Rc::clone(&waiting));
            move |event, url| {
                if matches!(event, PageLoadEvent::Started) {
                    // The requests of the page that is going are answered nowhere.
                    waiting.borrow_mut().clear();
                }
                if shared {
                    // A navigation to another site may have moved the page to another process.
                    crate::web_process::recheck(id, &writer);
                }
                send(&writer, &HostMsg::PageLoad { url, done: matches!(event, PageLoadEvent::Finished) });
            }
        });
    for s in scripts {
        builder = builder.with_initialization_script(s);
    }
    builder = schemes.add(builder, id, opts, writer)?;
    let mut toplevel = None;
    let built = match opts.parent_xid {
        Some(xid) => builder.build_as_child(&ForeignXid(xid)),
        None => {
            use wry::WebViewBuilderExtUnix;
            let window = gtk::Window::new(gtk::WindowType::Toplevel);
            window.set_default_size(
                opts.bounds.width.try_into().unwrap_or(800),
                opts.bounds.height.try_into().unwrap_or(600),
            );
            let vbox = gtk::Box::new(gtk::Orientation::Vertical, 0);
            window.add(&vbox);
            let built = builder.build_gtk(&vbox);
            window.show_all();
            toplevel = Some(window);
            built
        }
    };
    let built = built.context("creating the WebView")?;
    prepare(&built, opts.parent_xid, &inbox);
    crate::navigation::watch(&wry::WebViewExtUnix::webview(&built), &navs, writer);
    built.load_url(&opts.url).with_context(|| format!("loading {}", opts.url))?;
    if shared {
        crate::web_process::claim_new(id, &before, writer);
    }
    let pending = ask_permissions(&built, writer);
    *webview.borrow_mut() = Some(built);

    // What happens when the shell closes the view's connection.
    let closed: Box<dyn FnOnce()> = match closed {
        Some(f) => {
            let (content, pauses) = (Arc::clone(&schemes.content), schemes.pauses.clone());
            Box::new(move || {
                content.lock().remove(&id);
                pauses.remove(id);
                crate::web_process::release(id);
                f();
            })
        }
        None => Box::new(gtk::main_quit),
    };
    let drain = drainer(Rc::clone(&inbox), in_rx, pending, navs, closed);
    DRAINS.with_borrow_mut(|d| d.insert(id, Box::new(drain)));
    // What came for it while it was being made.
    wake(id);
    Ok(OpenView { _toplevel: toplevel })
}

/// What the built view needs before it runs: the keyboard routed to the shell, the console
/// copied where asked (for debugging pages), and the handler for requests answered as replies.
fn prepare(built: &WebView, parent_xid: Option<u64>, inbox: &Rc<Inbox>) {
    use wry::WebViewExtUnix;
    let view = WebViewExtUnix::webview(built);
    if let Some(xid) = parent_xid {
        inbox.keys.set_shell_window(xid);
        crate::keys::route(&view, &inbox.keys);
    }
    if std::env::var_os("TESSERA_WEB_CONSOLE").is_some() {
        // For debugging pages: WebKit copies console messages to the host's stdout.
        use webkit2gtk::SettingsExt;
        use webkit2gtk::WebViewExt;
        if let Some(settings) = WebViewExt::settings(&view) {
            settings.set_enable_write_console_messages_to_stdout(true);
        }
    }
    {
        // A page whose web process has died is gone: the shell is told, and starts it again.
        use webkit2gtk::{WebProcessTerminationReason as Why, WebViewExt};
        let writer = Arc::clone(&inbox.writer);
        view.connect_web_process_terminated(move |_, why| {
            let reason = match why {
                Why::Crashed => "crashed",
                Why::ExceededMemoryLimit => "went over WebKit's memory limit",
                Why::TerminatedByApi => "was ended",
                _ => "ended",
            };
            tracing::warn!("the page's web process {reason}");
            send(&writer, &HostMsg::WebProcessEnded { reason: reason.to_owned() });
        });
    }
    let inbox = Rc::clone(inbox);
    if !crate::reply::register(&view, move |text, reply| inbox.requested(&text, reply)) {
        tracing::warn!("WebKit refused the request handler; FDC3 answers go the ordinary way");
    }
}

/// What GTK's thread runs each time the reader thread wakes it: every message waiting is
/// applied (placement, window moves, permission answers at once; what is for the page
/// gathered into one script call), and the loop quits when the shell hung up.
fn drainer(
    inbox: Rc<Inbox>,
    in_rx: flume::Receiver<Inbound>,
    pending: Rc<RefCell<HashMap<u64, webkit2gtk::PermissionRequest>>>,
    navs: Rc<RefCell<crate::navigation::Navigations>>,
    closed: Box<dyn FnOnce()>,
) -> impl FnMut() -> bool + 'static {
    let latest: Rc<RefCell<Option<Bounds>>> = Rc::new(RefCell::new(None));
    let mut closed = Some(closed);
    move || {
        if drain_once(&inbox, &in_rx, &pending, &navs, &latest) {
            return true;
        }
        // The shell closed the view: it goes (its WebView destroyed with its window).
        navs.borrow_mut().refuse_all();
        pending.borrow_mut().clear();
        drop(inbox.webview.borrow_mut().take());
        if let Some(f) = closed.take() {
            f();
        }
        false
    }
}

/// Applies what `in_rx` holds to the view; `false` once the shell has closed it.
fn drain_once(
    inbox: &Rc<Inbox>,
    in_rx: &flume::Receiver<Inbound>,
    pending: &Rc<RefCell<HashMap<u64, webkit2gtk::PermissionRequest>>>,
    navs: &Rc<RefCell<crate::navigation::Navigations>>,
    latest: &Rc<RefCell<Option<Bounds>>>,
) -> bool {
    let (webview, writer, waiting) = (&inbox.webview, &inbox.writer, &inbox.waiting);
    {
        let wv = webview.borrow();
        let Some(wv) = wv.as_ref() else { return false };
        let mut batch = Batch::default();
        while let Ok(inbound) = in_rx.try_recv() {
            match inbound {
                Inbound::Msg(msg @ (ShellMsg::SetBounds(_) | ShellMsg::SetVisible(true))) => {
                    let result = match msg {
                        ShellMsg::SetBounds(b) => {
                            *latest.borrow_mut() = Some(b);
                            wv.set_bounds(rect(b))
                        }
                        _ => wv.set_visible(true),
                    };
                    if let Err(e) = result {
                        tracing::warn!("could not place the view: {e}");
                    }
                    // GTK can apply a stale configure after a resize of the embedded window,
                    // and WebKit may not repaint a view shown again: once the dust has
                    // settled, nudge the size by a pixel and back, which makes it lay out
                    // and paint again (the latest bounds win).
                    let (webview, latest) = (Rc::clone(webview), Rc::clone(latest));
                    gtk::glib::timeout_add_local_once(Duration::from_millis(120), move || {
                        if let (Some(wv), Some(b)) = (webview.borrow().as_ref(), *latest.borrow()) {
                            let nudged = Bounds { height: b.height.saturating_add(1), ..b };
                            let _ = wv.set_bounds(rect(nudged));
                            let _ = wv.set_bounds(rect(b));
                        }
                    });
                }
                Inbound::Msg(ShellMsg::SetParent { xid }) => {
                    // The bounds that follow may repeat the position GTK last set (a move
                    // back to the same spot), which GTK skips: the view lands there at once.
                    let at = latest.borrow().map_or((0, 0), |b| (b.x, b.y));
                    match reparent(wv, xid, at) {
                        Ok(()) => inbox.keys.set_shell_window(xid),
                        Err(e) => tracing::warn!("could not move the view to shell window {xid}: {e:#}"),
                    }
                }
                Inbound::Msg(ShellMsg::NavigationDecision { id, allow }) => {
                    let then = navs.borrow_mut().decided(id, allow);
                    if let crate::navigation::Then::Open(url) = then
                        && let Err(e) = wv.load_url(&url)
                    {
                        tracing::warn!("could not open {url}: {e}");
                    }
                }
                Inbound::Msg(ShellMsg::PermissionDecision { id, allow }) => {
                    use webkit2gtk::PermissionRequestExt;
                    if let Some(request) = pending.borrow_mut().remove(&id) {
                        if allow { request.allow() } else { request.deny() }
                    }
                }
                Inbound::Msg(ShellMsg::Fdc3 { message }) => {
                    let reply = waiting.borrow_mut().take_for(&message);
                    match reply {
                        // What came before it goes first.
                        Some(reply) => {
                            let given = waiting.borrow().given();
                            deliver(inbox.view, wv, std::mem::take(&mut batch), given.saturating_sub(1));
                            crate::stamps::record_out(inbox.view, &message);
                            reply.answer(&message);
                        }
                        None => batch.push_fdc3(&message),
                    }
                }
                Inbound::Msg(msg) => to_page(wv, writer, msg, &mut batch),
                Inbound::Closed => return false,
            }
        }
        let given = waiting.borrow().given();
        deliver(inbox.view, wv, batch, given);
        inbox.acks.catch_up(Some(wv));
    }
    true
}

/// Hands the page what `batch` holds, if anything, in one script call, after the `given`
/// replies to its requests it must see first.
fn deliver(view: ViewId, wv: &WebView, batch: Batch, given: u64) {
    let Some(batch) = batch.finish() else { return };
    crate::stamps::record_out(view, &batch);
    if let Err(e) = wv.evaluate_script(&format!("window.__tesseraHost&&__tesseraHost.deliver({batch},{given})")) {
        tracing::warn!("could not deliver to the page: {e}");
    }
}

/// The scripts that run before the page's own: its saved state, the bus (with a token only
/// this page's preload knows), FDC3, and any preloads the manifest adds; and the token.
fn page_scripts(opts: &Options) -> Result<(String, Vec<String>)> {
    // The saved state goes in before the bus: the page can read it as soon as it runs.
    let state = opts
        .state_file
        .as_ref()
        .and_then(|f| std::fs::read(f).ok())
        .filter(|b| b.len() <= protocol::wire::MAX_APP_STATE)
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .unwrap_or(Value::Null);
    // A token only this page's preload knows: what arrives without it (a frame of another
    // origin posting to the message handler directly) is refused.
    let token = {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).context("no randomness for the page token")?;
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let bus = BUS_JS.replace("__TESSERA_PAGE_TOKEN__", &token);
    let mut scripts = vec![format!("window.__tesseraState = {state};")];
    if opts.console {
        // Read (and removed) by the bus preload, before any page script runs.
        scripts.push("window.__tesseraConsole = true;".to_owned());
    }
    scripts.extend([bus, FDC3_JS.to_owned()]);
    for path in &opts.preload {
        scripts.push(std::fs::read_to_string(path).with_context(|| format!("reading preload {}", path.display()))?);
    }
    Ok((token, scripts))
}

/// How long the shell may be silent before the host decides it is gone (TESSERA_SHELL_TIMEOUT_MS
/// shortens it, for tests).
pub(crate) fn shell_timeout() -> Duration {
    std::env::var("TESSERA_SHELL_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(SHELL_TIMEOUT, Duration::from_millis)
}

/// Starts the host's two threads on the shell's connection: one pings the shell when it has
/// been quiet and leaves if it stays so; one reads what the shell sends, answers pings, passes
/// everything else to GTK's thread (and, when the shell hangs up, closes the view in a `shared`
/// host, or leaves).
fn start_shell_threads(
    mut reader: HostConnection,
    writer: &Writer,
    in_tx: flume::Sender<Inbound>,
    view: ViewId,
    shared: bool,
) -> Result<()> {
    let pinger = Arc::clone(writer);
    // Set when the connection has ended: its watch ends with it.
    let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let started = Instant::now();
    // When the shell was last heard from: anything it sends (its probes come every second
    // while the page is up) shows its runtime is alive, as a pong does.
    let last_heard = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let ms_since_start = move || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let shell_timeout = shell_timeout();
    {
        // Heartbeats the other way: a shell that stops answering is not waited for forever. A
        // shell heard from within the last period is not pinged (one message and its answer
        // fewer each second, for both).
        let (writer, last_heard, ended) = (Arc::clone(writer), Arc::clone(&last_heard), Arc::clone(&ended));
        std::thread::Builder::new().name("shell-watch".into()).spawn(move || {
            let mut nonce = 0u64;
            loop {
                std::thread::sleep(SHELL_PING_EVERY);
                if ended.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                let silent = ms_since_start().saturating_sub(last_heard.load(std::sync::atomic::Ordering::Relaxed));
                if Duration::from_millis(silent) > shell_timeout {
                    tracing::error!("the shell has not answered for {silent} ms; leaving");
                    std::process::exit(1);
                }
                if Duration::from_millis(silent) >= SHELL_PING_EVERY {
                    nonce += 1;
                    send(&writer, &HostMsg::Ping { nonce });
                }
            }
        })?;
    }
    std::thread::Builder::new().name("shell-reader".into()).spawn(move || {
        loop {
            let msg = reader.recv();
            if matches!(msg, Ok(Some(_))) {
                last_heard.store(ms_since_start(), std::sync::atomic::Ordering::Relaxed);
            }
            match msg {
                Ok(Some(ShellMsg::Ping { nonce })) => send(&pinger, &HostMsg::Pong { nonce }),
                Ok(Some(ShellMsg::Pong { .. })) => {}
                Ok(Some(msg)) => {
                    if in_tx.send(Inbound::Msg(msg)).is_err() {
                        break;
                    }
                    wake(view);
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::error!("connection to the shell failed: {e:#}");
                    break;
                }
            }
        }
        ended.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = in_tx.send(Inbound::Closed);
        wake(view);
        if shared {
            // Only this view goes; the host lives as long as its control socket.
            return;
        }
        // The shell hung up: leave. If the GTK loop cannot (a stuck page), leave anyway.
        std::thread::sleep(Duration::from_secs(3));
        std::process::exit(0);
    })?;
    Ok(())
}

/// What the page posts to its host: checked for the page's token, then turned into messages
/// for the shell; what is refused is told to the page and (at most ten times a second) to the
/// shell for its record.
struct Inbox {
    /// The view's id in this host.
    view: ViewId,
    writer: Writer,
    webview: Rc<RefCell<Option<WebView>>>,
    token: String,
    /// Requests whose answers go back as the replies to their posts.
    waiting: Rc<RefCell<crate::reply::Waiting>>,
    /// When the shell was last told of a refusal, and how many times since.
    told: Cell<(Instant, u32)>,
    /// What the page is told of its messages written to the shell.
    acks: crate::pace::Acks,
    /// The keyboard's way between this view and the shell window it is in.
    keys: Rc<crate::keys::Keys>,
}

impl Inbox {
    /// Tells the shell, for its record, what was refused (at most ten times a second).
    fn tell(&self, what: String) {
        let (since, n) = self.told.get();
        let (since, n) = if since.elapsed() >= Duration::from_secs(1) { (Instant::now(), 0) } else { (since, n) };
        self.told.set((since, n + 1));
        if n < 10 {
            send(&self.writer, &HostMsg::PageRefused { what });
        }
    }

    fn refused(&self, e: &anyhow::Error) {
        tracing::warn!("refused a message from the page: {e:#}");
        self.tell(format!("{e:#}"));
        if let Some(wv) = self.webview.borrow().as_ref() {
            refuse_in_page(wv, "message", &format!("{e:#}"));
        }
    }

    /// The page's text without its token; `None` (and said) if it does not carry it.
    fn checked<'a>(&self, body: &'a str) -> Option<&'a str> {
        let body = body.strip_prefix(self.token.as_str());
        if body.is_none() {
            // Not from this page's preload: a frame of another origin, or a forgery.
            tracing::warn!("ignored a message without the page's token");
            self.tell("a message without the page's token (another frame, or a forgery)".to_owned());
        }
        body
    }

    /// One post from the page: one envelope or a JSON array of them.
    fn posted(&self, body: &str) {
        crate::stamps::record(self.view, body);
        tracing::trace!(len = body.len(), "message from the page");
        let Some(body) = self.checked(body) else { return };
        let envelopes = match protocol::envelope::app_batch(body) {
            Ok(envelopes) => envelopes,
            Err(e) => return self.refused(&e.into()),
        };
        let mut msgs = Vec::with_capacity(envelopes.len());
        for envelope in &envelopes {
            match from_page(envelope) {
                Ok(msg) => msgs.push(msg),
                Err(e) => self.refused(&e),
            }
        }
        // One write for what the page posted at once (its refused messages counted as passed
        // on: the page counts every post).
        if !send_page(&self.writer, msgs, envelopes.len() as u64) {
            self.refused(&anyhow::anyhow!(
                "the shell is not taking this app's messages ({} waiting); not sent",
                self.writer.waiting()
            ));
        }
        self.acks.catch_up(self.webview.borrow().as_ref());
    }

    /// One FDC3 request from the page whose answer goes back as `reply` (anything else is
    /// refused, and the reply with it).
    fn requested(&self, body: &str, reply: crate::reply::Reply) {
        crate::stamps::record(self.view, body);
        tracing::trace!(len = body.len(), "request from the page");
        let Some(body) = self.checked(body) else { return };
        // From here the post is the preload's, which counts its reply as given whatever it
        // says: a reply dropped here (it errs) is counted too.
        let message = match from_page(body) {
            Ok(HostMsg::Fdc3 { message }) => message,
            Ok(_) => {
                self.waiting.borrow_mut().gave_up();
                return self.refused(&anyhow::anyhow!("only FDC3 requests are answered as replies"));
            }
            Err(e) => {
                self.waiting.borrow_mut().gave_up();
                return self.refused(&e);
            }
        };
        let id = protocol::envelope::dacp_request_id(&message);
        if !send_page(&self.writer, vec![HostMsg::Fdc3 { message }], 1) {
            self.waiting.borrow_mut().gave_up();
            let waiting = self.writer.waiting();
            return self.refused(&anyhow::anyhow!(
                "the shell is not taking this app's messages ({waiting} waiting); not sent"
            ));
        }
        // Without an id the answer cannot be matched: it comes the ordinary way.
        match id {
            Some(id) => self.waiting.borrow_mut().insert(id, reply),
            None => self.waiting.borrow_mut().gave_up(),
        }
        self.acks.catch_up(self.webview.borrow().as_ref());
    }
}

/// WebKit's permission requests (camera, microphone, location, notifications, clipboard) are
/// the shell's to decide; each waits in the map returned, by id, for its answer.
fn ask_permissions(built: &WebView, writer: &Writer) -> Rc<RefCell<HashMap<u64, webkit2gtk::PermissionRequest>>> {
    let pending: Rc<RefCell<HashMap<u64, webkit2gtk::PermissionRequest>>> = Rc::new(RefCell::new(HashMap::new()));
    {
        use webkit2gtk::WebViewExt;
        use wry::WebViewExtUnix;
        let (writer, pending) = (Arc::clone(writer), Rc::clone(&pending));
        let next = Cell::new(0u64);
        WebViewExtUnix::webview(built).connect_permission_request(move |_, request| {
            use gtk::glib::prelude::*;
            use webkit2gtk::PermissionRequestExt;
            let permissions: Vec<String> = if let Some(media) = request.downcast_ref::<webkit2gtk::UserMediaPermissionRequest>() {
                use webkit2gtk::UserMediaPermissionRequestExt;
                let mut p = Vec::new();
                if media.is_for_video_device() {
                    p.push("camera".to_owned());
                }
                if media.is_for_audio_device() {
                    p.push("microphone".to_owned());
                }
                p
            } else if request.is::<webkit2gtk::GeolocationPermissionRequest>() {
                vec!["geolocation".to_owned()]
            } else if request.is::<webkit2gtk::NotificationPermissionRequest>() {
                vec!["notifications".to_owned()]
            } else if request.type_().name() == "WebKitClipboardPermissionRequest" {
                vec!["clipboard.read".to_owned()]
            } else {
                Vec::new()
            };
            if permissions.is_empty() {
                tracing::info!(kind = %request.type_().name(), "refused a WebKit permission request Tessera does not grant");
                request.deny();
                return true;
            }
            next.set(next.get() + 1);
            pending.borrow_mut().insert(next.get(), request.clone());
            send(&writer, &HostMsg::PermissionRequest { id: next.get(), permissions });
            true
        });
    }
    pending
}

/// Moves the view's X11 window into another shell window, at `at` in it. Any X client may
/// reparent any window; GTK keeps placing the view relative to whatever its parent is.
fn reparent(wv: &WebView, parent: u64, at: (i32, i32)) -> Result<()> {
    use wry::WebViewExtUnix as _;
    use x11rb::connection::Connection as _;
    use x11rb::protocol::xproto::ConnectionExt as _;
    let top = wv.webview().toplevel().context("the view is in no window")?;
    let window = top.window().context("the view's window is not realised")?;
    let window = window
        .downcast::<gdkx11::X11Window>()
        .map_err(|_| anyhow::anyhow!("the view's window is not an X11 window"))?;
    let xid = u32::try_from(window.xid()).context("X11 window id out of range")?;
    let parent = u32::try_from(parent).context("X11 window id out of range")?;
    let clamp = |v: i32| i16::try_from(v).unwrap_or(if v < 0 { i16::MIN } else { i16::MAX });
    crate::x11::with_x11(|conn| {
        let tree = conn.query_tree(xid)?.reply().context("asking where the view is")?;
        if tree.parent == parent {
            return Ok(());
        }
        conn.reparent_window(xid, parent, clamp(at.0), clamp(at.1))?.check().context("moving the view")?;
        conn.flush()?;
        tracing::info!(view = xid, parent, "view moved to another shell window");
        Ok(())
    })
}

/// What reaches the page in one script call per wake-up: bus deliveries and the FDC3 agent's
/// messages, in the order they came, as the items of one JSON array (each evaluated script is
/// a trip to the web process, which costs more than the message).
#[derive(Debug, Default)]
struct Batch(String);

impl Batch {
    fn next_item(&mut self) {
        self.0.push(if self.0.is_empty() { '[' } else { ',' });
    }

    fn push(&mut self, item: &Value) {
        self.next_item();
        self.0.push_str(&item.to_string());
    }

    /// An FDC3 message as the agent wrote it: JSON text from the shell, not the page.
    fn push_fdc3(&mut self, message: &str) {
        self.next_item();
        self.0.push_str("{\"fdc3\":");
        self.0.push_str(message);
        self.0.push('}');
    }

    /// The batch as a JavaScript array, if anything is in it.
    fn finish(self) -> Option<String> {
        let mut text = self.0;
        if text.is_empty() {
            return None;
        }
        text.push(']');
        Some(text)
    }
}

/// Applies one message from the shell; deliveries and FDC3 messages are gathered to reach the
/// page in one call.
fn to_page(wv: &WebView, writer: &Writer, msg: ShellMsg, batch: &mut Batch) {
    let result = match msg {
        ShellMsg::SetBounds(b) => wv.set_bounds(rect(b)),
        ShellMsg::SetVisible(v) => wv.set_visible(v),
        ShellMsg::Deliver { sub, seq, topic, payload, timestamp_us, sender, trace } => {
            let data = protocol::envelope::app_value(&payload);
            let mut d = json!({
                "sub": sub, "topic": topic, "data": data, "seq": seq,
                "timestamp": timestamp_us / 1000, "sender": sender,
            });
            if let Some(trace) = trace {
                d["traceparent"] = json!(trace.to_string());
            }
            batch.push(&d);
            Ok(())
        }
        ShellMsg::Direct { topic, payload, sender_app, seq } => {
            batch.push(
                &json!({ "direct": true, "topic": topic, "data": protocol::envelope::app_value(&payload), "from": sender_app, "seq": seq }),
            );
            Ok(())
        }
        ShellMsg::Call { service, call, action, payload, caller_app } => {
            let c = json!({ "service": service, "call": call, "action": action, "data": protocol::envelope::app_value(&payload), "from": caller_app });
            wv.evaluate_script(&format!("window.__tesseraHost&&__tesseraHost.call({c})"))
        }
        ShellMsg::Response { call, result } => {
            let r = match result {
                Ok(payload) => json!({ "call": call, "ok": true, "value": protocol::envelope::app_value(&payload) }),
                Err(error) => json!({ "call": call, "ok": false, "error": error }),
            };
            wv.evaluate_script(&format!("window.__tesseraHost&&__tesseraHost.response({r})"))
        }
        ShellMsg::Refused { context, error } => {
            refuse_in_page(wv, &context, &error);
            Ok(())
        }
        ShellMsg::Probe { nonce } => {
            // Answered from inside the page: a page stuck in a loop never runs the callback.
            let writer = Arc::clone(writer);
            wv.evaluate_script_with_callback("1", move |_| send(&writer, &HostMsg::ProbeAck { nonce }))
        }
        ShellMsg::Eval { id, js } => {
            // Also compiled by WebKit as a script of its own, for pages whose
            // Content-Security-Policy forbids `eval` (an expression only; statements fail here
            // and are left to `eval`).
            let _ = wv.evaluate_script(&format!("window.__tesseraEval{id} = async () => (\n{js}\n);"));
            wv.evaluate_script(&eval_wrapper(id, &js))
        }
        // The agent's JSON is a JavaScript expression as it stands.
        ShellMsg::Fdc3 { message } => {
            batch.push_fdc3(&message);
            Ok(())
        }
        ShellMsg::Welcome { .. } | ShellMsg::Ping { .. } | ShellMsg::Pong { .. } => Ok(()),
        ShellMsg::NavigationDecision { .. } | ShellMsg::PermissionDecision { .. } | ShellMsg::SetParent { .. } => {
            Ok(())
        }
    };
    if let Err(e) = result {
        tracing::warn!("the WebView refused a request: {e}");
    }
}

/// Script that evaluates `js` in the page's global scope (or, where the page's CSP forbids
/// `eval`, runs it as compiled into `window.__tesseraEval<id>`), awaits it, and posts the outcome.
fn eval_wrapper(id: u64, js: &str) -> String {
    let source = Value::String(js.to_owned());
    format!(
        r#"(async () => {{
  const f = window.__tesseraEval{id};
  delete window.__tesseraEval{id};
  let r;
  try {{
    let v;
    try {{ v = (0, eval)({source}); }}
    catch (e) {{ if (e instanceof EvalError && typeof f === "function") v = f(); else throw e; }}
    v = await v;
    r = {{ ok: true, value: v === undefined ? null : v }}; JSON.stringify(r);
  }}
  catch (e) {{ r = {{ ok: false, error: String(e && e.message !== undefined ? e.name + ": " + e.message : e) }}; }}
  window.__tesseraHost.post("tessera.evalResult", Object.assign({{ id: {id} }}, r));
}})()"#
    )
}

fn refuse_in_page(wv: &WebView, context: &str, error: &str) {
    let (c, e) = (Value::String(context.to_owned()), Value::String(error.to_owned()));
    let _ = wv.evaluate_script(&format!("window.__tesseraHost&&__tesseraHost.refused({c},{e})"));
}

/// Turns one JSON envelope from the page into a message for the shell (the vocabulary is
/// `protocol::envelope`'s, shared with native apps); heartbeats are the host's own business.
fn from_page(body: &str) -> Result<HostMsg> {
    let msg = protocol::envelope::app_message(body)?;
    if matches!(msg, HostMsg::Ping { .. } | HostMsg::Pong { .. }) {
        bail!("a page does not answer the shell's heartbeats");
    }
    Ok(msg)
}
