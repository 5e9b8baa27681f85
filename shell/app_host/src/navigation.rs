//! Where the page may go is the shell's to decide, and asking must not hold GTK's thread: the
//! view's navigations (its own and its frames') wait in WebKit, their decisions kept here by
//! request id, while the loop goes on; the shell's answer (or, after
//! [`NAVIGATION_TIMEOUT`], a refusal) settles each. A page's request for a new window is
//! refused at once and, if the shell allows it, opened in place (until the compositor hosts
//! extra windows).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use protocol::wire::HostMsg;
use webkit2gtk::{NavigationPolicyDecision, PolicyDecision, PolicyDecisionExt, PolicyDecisionType};

use crate::to_shell::{Writer, send};

/// Longest a navigation waits for the shell's answer before it is refused.
pub(crate) const NAVIGATION_TIMEOUT: Duration = Duration::from_secs(2);

/// Most questions waiting at once; past it a navigation is refused without asking (a page
/// starting navigations in a loop cannot grow this without bound).
const MOST_WAITING: usize = 256;

/// A question to the shell, waiting for its answer.
enum Question {
    /// A navigation, held in WebKit until decided.
    Navigate(PolicyDecision),
    /// A new window the page asked for (already refused as a window): the URL to open in
    /// place if allowed.
    NewWindow(String),
}

/// The questions waiting, by request id (even for navigations, odd for new windows).
#[derive(Default)]
pub(crate) struct Navigations {
    next: u64,
    waiting: HashMap<u64, Question>,
}

/// What an answer asks of the view.
pub(crate) enum Then {
    Nothing,
    /// Open this URL in place.
    Open(String),
}

impl Navigations {
    /// Settles question `id` with the shell's answer.
    pub(crate) fn decided(&mut self, id: u64, allow: bool) -> Then {
        match self.waiting.remove(&id) {
            Some(Question::Navigate(decision)) => {
                if allow {
                    decision.use_();
                } else {
                    decision.ignore();
                }
                Then::Nothing
            }
            Some(Question::NewWindow(url)) if allow => Then::Open(url),
            // Refused, or an answer to a question that already timed out.
            Some(Question::NewWindow(_)) | None => Then::Nothing,
        }
    }

    /// Refuses every navigation waiting (the host is leaving).
    pub(crate) fn refuse_all(&mut self) {
        for (_, q) in self.waiting.drain() {
            if let Question::Navigate(decision) = q {
                decision.ignore();
            }
        }
    }
}

/// Asks the shell about `url`; settled by [`Navigations::decided`] or refused after the timeout.
fn ask(navs: &Rc<RefCell<Navigations>>, writer: &Writer, url: String, question: Question) {
    let new_window = matches!(question, Question::NewWindow(_));
    let id = {
        let mut n = navs.borrow_mut();
        if n.waiting.len() >= MOST_WAITING {
            tracing::warn!(%url, "too many navigations waiting for the shell; refused");
            if let Question::Navigate(decision) = question {
                decision.ignore();
            }
            return;
        }
        let id = n.next * 2 + u64::from(new_window);
        n.next += 1;
        n.waiting.insert(id, question);
        id
    };
    send(writer, &HostMsg::NavigationRequest { id, url: url.clone(), new_window });
    let navs = Rc::downgrade(navs);
    gtk::glib::timeout_add_local_once(NAVIGATION_TIMEOUT, move || {
        let Some(navs) = navs.upgrade() else { return };
        let late = navs.borrow_mut().waiting.remove(&id);
        if let Some(q) = late {
            tracing::warn!(%url, "no navigation decision from the shell in time; refused");
            if let Question::Navigate(decision) = q {
                decision.ignore();
            }
        }
    });
}

/// Holds each navigation of `view` (and its frames) for the shell's answer.
pub(crate) fn watch(view: &webkit2gtk::WebView, navs: &Rc<RefCell<Navigations>>, writer: &Writer) {
    use gtk::glib::prelude::*;
    use webkit2gtk::{NavigationPolicyDecisionExt as _, URIRequestExt as _, WebViewExt as _};
    let (navs, writer) = (Rc::clone(navs), std::sync::Arc::clone(writer));
    view.connect_decide_policy(move |_, decision, kind| {
        if kind != PolicyDecisionType::NavigationAction {
            // New windows go to `create` (see `new_window`); responses are WebKit's own.
            return false;
        }
        let url = decision
            .downcast_ref::<NavigationPolicyDecision>()
            .and_then(|d| d.navigation_action())
            .and_then(|a| a.request())
            .and_then(|r| r.uri());
        match url {
            Some(url) => ask(&navs, &writer, url.to_string(), Question::Navigate(decision.clone())),
            None => {
                tracing::warn!("a navigation without a URL; refused");
                decision.ignore();
            }
        }
        true
    });
}

/// A page's request for a new window at `url`: refused as a window; asked about, to open in
/// place.
pub(crate) fn new_window(navs: &Rc<RefCell<Navigations>>, writer: &Writer, url: String) {
    ask(navs, writer, url.clone(), Question::NewWindow(url));
}
