//! Holding a page to what its connection to the shell takes, without ever waiting on GTK's
//! thread: the page is acknowledged only what has been written (its preload holds back past a
//! window of unacknowledged messages), and its pauses (a synchronous request to
//! `tessera-wait:`, every couple of thousand messages) are answered only once everything it
//! posted before them has been written. A page its shell holds to its rate limit is slowed to
//! it; the other views of a shared host are not.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use wry::{RequestAsyncResponder, WebView, WebViewBuilder};

use crate::to_shell::{ViewId, Writer};

/// The scheme of the request the preload pauses on.
pub(crate) const WAIT_SCHEME: &str = "tessera-wait";

/// How many of a page's messages are written between telling it so.
pub(crate) const ACK_EVERY: u64 = 1000;

/// Each view's pauses that wait: the page's messages queued when each came, and its answer.
#[derive(Default, Clone)]
pub(crate) struct Pauses(Arc<Mutex<HashMap<ViewId, Parked>>>);

struct Parked {
    writer: Writer,
    waiting: Vec<(u64, RequestAsyncResponder)>,
}

fn answer(responder: RequestAsyncResponder) {
    let response = wry::http::Response::builder()
        .status(200)
        .header("Access-Control-Allow-Origin", "*")
        .body(std::borrow::Cow::Borrowed(&b""[..]));
    match response {
        Ok(r) => responder.respond(r),
        Err(e) => tracing::warn!("could not answer a page's pause: {e}"),
    }
}

impl Pauses {
    /// The context's pause scheme (registered once per context), answered for each view by
    /// its id.
    pub(crate) fn register<'a>(&self, builder: WebViewBuilder<'a>) -> WebViewBuilder<'a> {
        let pauses = self.clone();
        builder.with_asynchronous_custom_protocol(WAIT_SCHEME.to_owned(), move |id, _request, responder| {
            let Ok(view) = id.parse::<ViewId>() else { return answer(responder) };
            {
                let mut views = pauses.0.lock();
                let Some(p) = views.get_mut(&view) else {
                    drop(views);
                    return answer(responder);
                };
                p.waiting.push((p.writer.queued(), responder));
                p.writer.watch(true);
            }
            // Looked at again now that the writer wakes GTK's thread: what it wrote before
            // it was watched would otherwise wake no one.
            pauses.answer_written(view);
        })
    }

    /// `view` pauses on what `writer` has written.
    pub(crate) fn add(&self, view: ViewId, writer: &Writer) {
        self.0.lock().insert(view, Parked { writer: Arc::clone(writer), waiting: Vec::new() });
    }

    /// `view` has closed: its pauses are answered (the page is going).
    pub(crate) fn remove(&self, view: ViewId) {
        let parked = self.0.lock().remove(&view);
        for (_, responder) in parked.into_iter().flat_map(|p| p.waiting) {
            answer(responder);
        }
    }

    /// Answers `view`'s pauses whose messages have all been written; whether any still wait.
    fn answer_written(&self, view: ViewId) -> bool {
        let mut views = self.0.lock();
        let Some(p) = views.get_mut(&view) else { return false };
        let written = p.writer.written();
        let (done, waiting): (Vec<_>, Vec<_>) = p.waiting.drain(..).partition(|(at, _)| *at <= written);
        p.waiting = waiting;
        let still = !p.waiting.is_empty();
        drop(views);
        for (_, responder) in done {
            answer(responder);
        }
        still
    }
}

/// One view's acknowledgements to its page.
pub(crate) struct Acks {
    view: ViewId,
    writer: Writer,
    pauses: Pauses,
    /// The page's messages it has been told of.
    acked: std::cell::Cell<u64>,
}

impl Acks {
    pub(crate) fn new(view: ViewId, writer: &Writer, pauses: &Pauses) -> Self {
        Self { view, writer: Arc::clone(writer), pauses: pauses.clone(), acked: std::cell::Cell::new(0) }
    }

    /// Tells the page what has been written since it was last told (every thousand or so),
    /// answers its pauses that may go, and says whether GTK's thread must hear of the next
    /// write.
    pub(crate) fn catch_up(&self, wv: Option<&WebView>) {
        loop {
            let written = self.writer.written();
            let due = written.saturating_sub(self.acked.get());
            if due >= ACK_EVERY {
                self.acked.set(written);
                if let Some(wv) = wv {
                    let _ = wv.evaluate_script(&format!("window.__tesseraHost&&__tesseraHost.ack({due})"));
                }
            }
            let paused = self.pauses.answer_written(self.view);
            let unacked = self.writer.queued().saturating_sub(self.acked.get());
            let watch = paused || unacked >= ACK_EVERY;
            self.writer.watch(watch);
            // What was written before the writer was told to wake this thread woke no one.
            if !watch || self.writer.written() == written {
                return;
            }
        }
    }
}
