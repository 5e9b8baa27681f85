//! Requests a page makes expecting one answer: WebKit's script messages with a reply. The
//! page's `window.webkit.messageHandlers.tesseraRequest.postMessage(text)` returns a promise,
//! which the host resolves with the answer's JSON text ([`Reply::answer`]): one message to the
//! web process and nothing to compile there, where an evaluated script costs a compile in the
//! page and a completion message back.
//!
//! webkit2gtk-rs binds neither the signal nor its reply type, so this room holds the app
//! host's FFI for them (the only other `unsafe` is the foreign window handle in `foreign.rs`).

use std::collections::{HashMap, VecDeque};
use std::ffi::CString;
use std::ptr::NonNull;

use gtk::glib;
use gtk::glib::prelude::*;
use gtk::glib::translate::ToGlibPtr;
use javascriptcore_rs_sys as jsc;
use webkit2gtk::ffi;

/// The handler's name, as the page sees it under `window.webkit.messageHandlers`.
pub(crate) const HANDLER: &str = "tesseraRequest";

/// Most requests waiting for their answers; past it the oldest is given up (its promise
/// rejected, its answer delivered the ordinary way if it ever comes).
const MOST_WAITING: usize = 4096;

/// A page's request waiting for its answer. Dropped unanswered, the page's promise is
/// rejected.
pub(crate) struct Reply {
    reply: NonNull<ffi::WebKitScriptMessageReply>,
    /// The JavaScript context the answer's value is made in (WebKit's, for script messages).
    context: NonNull<jsc::JSCContext>,
    answered: bool,
}

impl Reply {
    /// Resolves the page's promise with `text`.
    pub(crate) fn answer(mut self, text: &str) {
        let Ok(text) = CString::new(text) else {
            // JSON text has no NUL; an answer with one is given up (the promise rejected).
            return;
        };
        #[expect(unsafe_code, reason = "WebKit's reply API has no binding; both pointers are held references")]
        // SAFETY: `reply` and `context` were referenced when this was made and are released
        // only in `drop`; the new value is released after WebKit has taken what it needs.
        unsafe {
            let value = jsc::jsc_value_new_string(self.context.as_ptr(), text.as_ptr());
            ffi::webkit_script_message_reply_return_value(self.reply.as_ptr(), value);
            glib::gobject_ffi::g_object_unref(value.cast());
        }
        self.answered = true;
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        #[expect(unsafe_code, reason = "WebKit's reply API has no binding; both pointers are held references")]
        // SAFETY: the references taken in `register`'s handler, released once, here.
        unsafe {
            if !self.answered {
                ffi::webkit_script_message_reply_return_error_message(self.reply.as_ptr(), c"no answer".as_ptr());
            }
            ffi::webkit_script_message_reply_unref(self.reply.as_ptr());
            glib::gobject_ffi::g_object_unref(self.context.as_ptr().cast());
        }
    }
}

/// Registers the handler on `view`'s page (its own script world) and calls `on_request` with
/// each message's text and its [`Reply`]. False if WebKit refused (the page then finds no
/// handler and posts its requests the ordinary way).
pub(crate) fn register(view: &webkit2gtk::WebView, on_request: impl Fn(String, Reply) + 'static) -> bool {
    use webkit2gtk::WebViewExt;
    let Some(manager) = view.user_content_manager() else { return false };
    let Ok(name) = CString::new(HANDLER) else { return false };
    #[expect(unsafe_code, reason = "the binding cannot name the page's own world (a null world name)")]
    // SAFETY: a live manager, a NUL-terminated name, and null for the page's world.
    let registered = unsafe {
        ffi::webkit_user_content_manager_register_script_message_handler_with_reply(
            manager.to_glib_none().0,
            name.as_ptr(),
            std::ptr::null(),
        )
    };
    if registered == glib::ffi::GFALSE {
        return false;
    }
    manager.connect_local(&format!("script-message-with-reply-received::{HANDLER}"), false, move |values| {
        let handled = values.get(1).zip(values.get(2)).and_then(|(value, reply)| {
            let (text, reply) = take(value, reply)?;
            on_request(text, reply);
            Some(())
        });
        Some(handled.is_some().to_value())
    });
    true
}

/// The message's text and its reply, from the signal's arguments; `None` if they are not what
/// WebKit documents (the message is then left unhandled, and WebKit answers it).
fn take(value: &glib::Value, reply: &glib::Value) -> Option<(String, Reply)> {
    let value: glib::Object = value.get().ok()?;
    let value: *mut jsc::JSCValue = value.as_ptr().cast();
    let reply_value: *const glib::gobject_ffi::GValue = reply.to_glib_none().0;
    #[expect(unsafe_code, reason = "WebKit's reply type and the JSC value API have no binding")]
    // SAFETY: `value` is the signal's JSCValue (kept alive by the signal for this call);
    // `reply_value` holds its WebKitScriptMessageReply, referenced here to outlive the call; the
    // context is referenced for as long as the reply is kept; the string is copied and freed.
    unsafe {
        let reply =
            NonNull::new(glib::gobject_ffi::g_value_get_boxed(reply_value).cast::<ffi::WebKitScriptMessageReply>())?;
        let context = NonNull::new(jsc::jsc_value_get_context(value))?;
        let raw = jsc::jsc_value_to_string(value);
        if raw.is_null() {
            return None;
        }
        let text = std::ffi::CStr::from_ptr(raw).to_string_lossy().into_owned();
        glib::ffi::g_free(raw.cast());
        ffi::webkit_script_message_reply_ref(reply.as_ptr());
        glib::gobject_ffi::g_object_ref(context.as_ptr().cast());
        Some((text, Reply { reply, context, answered: false }))
    }
}

/// The requests waiting for their answers, by request id, oldest first.
#[derive(Default)]
pub(crate) struct Waiting {
    by_id: HashMap<String, Reply>,
    order: VecDeque<String>,
    /// Replies given (answered, or given up) since the page started: what the host delivers
    /// after them says so, and the page holds it until it has seen them all (WebKit may run a
    /// script before the reaction to a reply given earlier).
    given: u64,
}

impl Waiting {
    /// Keeps `reply` for the answer to request `id`.
    pub(crate) fn insert(&mut self, id: String, reply: Reply) {
        while self.by_id.len() >= MOST_WAITING {
            let Some(oldest) = self.order.pop_front() else { break };
            if self.by_id.remove(&oldest).is_some() {
                self.given += 1;
            }
        }
        if self.by_id.insert(id.clone(), reply).is_none() {
            self.order.push_back(id);
        } else {
            // The earlier request with the same id was given up (its reply errs when dropped).
            self.given += 1;
        }
    }

    /// Counts a reply given without an answer (a request refused, or one with no id to match
    /// its answer to): the page counts every reply to its requests, whatever it says.
    pub(crate) fn gave_up(&mut self) {
        self.given += 1;
    }

    /// The reply waiting for `message`, if it is the agent's answer to a request made this way.
    pub(crate) fn take_for(&mut self, message: &str) -> Option<Reply> {
        if self.by_id.is_empty() {
            return None;
        }
        let id = protocol::envelope::dacp_answered(message)?;
        let reply = self.by_id.remove(id.as_ref())?;
        if let Some(at) = self.order.iter().position(|x| *x == id) {
            self.order.remove(at);
        }
        self.given += 1;
        Some(reply)
    }

    /// How many replies were given (or will have been, once the one just taken is answered).
    pub(crate) fn given(&self) -> u64 {
        self.given
    }

    /// Gives every waiting request up: the page went away, and the next one counts from zero.
    pub(crate) fn clear(&mut self) {
        self.by_id.clear();
        self.order.clear();
        self.given = 0;
    }
}
