//! The keyboard between this view and the shell window it is embedded in.
//!
//! X11 gives a key to the window under the pointer when that window lies inside the focused
//! one. The view is a child of the shell's window, so with the shell focused (the user clicked
//! its search field), keys typed while the pointer rested over an app went to that app. And no
//! one gave a view the focus when it was clicked (there is no window manager to, and the shell
//! cannot see clicks in another process's window), so keys typed into a page went to whichever
//! app the pointer was over. So here:
//! - a click in the view gives the focus to the view's own window: keys then reach it wherever
//!   the pointer is, and the shell loses the focus (its text field stops taking keys);
//! - a key that reaches the view while a window around it has the focus (the shell's, which
//!   took it back when its own area was clicked) is sent on to that window, where the user was
//!   typing, and the page does not see it.

use anyhow::{Context as _, Result};
use gtk::glib::Propagation;
use gtk::prelude::*;
use x11rb::connection::Connection as _;
use x11rb::protocol::xproto::{ConnectionExt as _, EventMask, InputFocus, KeyButMask, KeyPressEvent, Window};

use crate::webview::with_x11;

/// `GetInputFocus`'s answer when keys go to whatever window the pointer is in.
const POINTER_ROOT: Window = 1;

/// The X11 window GTK takes the view's input in: the view's own window inside the container
/// the shell embeds (GTK does not listen for keys on that container, so focusing it would lose
/// them).
fn own_window(view: &webkit2gtk::WebView) -> Option<Window> {
    let window = view.window()?;
    if !window.ensure_native() {
        return None;
    }
    let window = window.downcast::<gdkx11::X11Window>().ok()?;
    u32::try_from(window.xid()).ok()
}

/// Routes the keyboard for `view` as the module says.
pub(crate) fn route(view: &webkit2gtk::WebView) {
    view.connect_button_press_event(|view, _| {
        if let Some(own) = own_window(view)
            && let Err(e) = with_x11(|c| {
                c.set_input_focus(InputFocus::PARENT, own, x11rb::CURRENT_TIME)?;
                c.flush()?;
                Ok(())
            })
        {
            tracing::debug!("could not take the keyboard focus: {e:#}");
        }
        Propagation::Proceed
    });
    // The toplevel sees a key before the page does (GTK hands it on to the focused widget).
    let Some(top) = view.toplevel() else {
        tracing::warn!("the view is in no window; keys are not routed");
        return;
    };
    for press in [true, false] {
        let view = view.clone();
        let handler = move |_: &gtk::Widget, event: &gtk::gdk::EventKey| {
            let Some(own) = own_window(&view) else { return Propagation::Proceed };
            match with_x11(|c| pass_on(c, own, event, press)) {
                Ok(true) => Propagation::Stop,
                Ok(false) => Propagation::Proceed,
                Err(e) => {
                    tracing::debug!("could not route a key: {e:#}");
                    Propagation::Proceed
                }
            }
        };
        if press {
            top.connect_key_press_event(handler);
        } else {
            top.connect_key_release_event(handler);
        }
    }
}

/// Sends `event` on to the focused window if that is a window around `own`; returns whether it
/// did (and the page must not see the key).
fn pass_on(
    c: &x11rb::rust_connection::RustConnection,
    own: Window,
    event: &gtk::gdk::EventKey,
    press: bool,
) -> Result<bool> {
    let focus = c.get_input_focus()?.reply().context("asking who has the keyboard")?.focus;
    if focus == x11rb::NONE || focus == POINTER_ROOT || focus == own {
        return Ok(false);
    }
    let mut at = own;
    let root = loop {
        let tree = c.query_tree(at)?.reply().context("asking where the view is")?;
        if tree.parent == focus {
            break tree.root;
        }
        if tree.parent == x11rb::NONE || tree.parent == tree.root {
            // The focused window is not around this view (the key came some other way).
            return Ok(false);
        }
        at = tree.parent;
    };
    let (x, y) = event.root_coords().unwrap_or_default();
    let clamp = |v: f64| v.clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16;
    let key = KeyPressEvent {
        response_type: if press {
            x11rb::protocol::xproto::KEY_PRESS_EVENT
        } else {
            x11rb::protocol::xproto::KEY_RELEASE_EVENT
        },
        detail: u8::try_from(event.hardware_keycode()).context("a key code beyond X11's")?,
        sequence: 0,
        time: event.time(),
        root,
        event: focus,
        child: x11rb::NONE,
        root_x: clamp(x),
        root_y: clamp(y),
        event_x: clamp(x),
        event_y: clamp(y),
        // X11's modifier and button bits; GDK's own (Super, Hyper, Meta) lie above them.
        state: KeyButMask::from((event.state().bits() & 0x1fff) as u16),
        same_screen: true,
    };
    let mask = if press { EventMask::KEY_PRESS } else { EventMask::KEY_RELEASE };
    c.send_event(false, focus, mask, key)?;
    c.flush()?;
    Ok(true)
}
