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
//! - a key that reaches the view while the shell window it is in has the focus (the shell took
//!   it back when its own area was clicked) is sent on to the shell, where the user was typing,
//!   and the page does not see it; its release follows it there;
//! - the shell's own shortcuts (Ctrl+K) go to the shell wherever the keyboard is, and give it
//!   the keyboard.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;

use anyhow::{Context as _, Result};
use gtk::glib::Propagation;
use gtk::prelude::*;
use x11rb::connection::Connection as _;
use x11rb::protocol::xproto::{ConnectionExt as _, EventMask, InputFocus, KeyButMask, KeyPressEvent, Window};

use crate::x11::with_x11;

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

/// The shell window one view is in (the window its keys are passed on to), and the keys whose
/// press went on to the shell: their release goes the same way, wherever the focus is by then
/// (a page must not see a release without its press, nor miss one).
#[derive(Debug, Default)]
pub(crate) struct Keys {
    shell: Cell<Window>,
    passed: RefCell<HashSet<u8>>,
}

impl Keys {
    /// The view now lives in shell window `xid` (at start, and after each move).
    pub(crate) fn set_shell_window(&self, xid: u64) {
        self.shell.set(Window::try_from(xid).unwrap_or(x11rb::NONE));
    }
}

/// Routes the keyboard for `view` as the module says, with `keys` its state.
pub(crate) fn route(view: &webkit2gtk::WebView, keys: &Rc<Keys>) {
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
        let keys = Rc::clone(keys);
        let handler = move |_: &gtk::Widget, event: &gtk::gdk::EventKey| {
            let Ok(code) = u8::try_from(event.hardware_keycode()) else { return Propagation::Proceed };
            let shell = keys.shell.get();
            let shortcut = press && shell != x11rb::NONE && is_shell_shortcut(event);
            if shortcut {
                // The shell's own keys work whatever has the keyboard, and take it: what is
                // typed next (into the launcher) goes to the shell.
                if let Err(e) = with_x11(|c| {
                    c.set_input_focus(InputFocus::PARENT, shell, x11rb::CURRENT_TIME)?;
                    Ok(())
                }) {
                    tracing::debug!("could not give the keyboard to the shell: {e:#}");
                }
            }
            let pass = if shortcut {
                true
            } else if press {
                // Only when the shell window itself has the focus: not the root window, a
                // window manager's frame, or this view's own windows.
                match with_x11(|c| Ok(c.get_input_focus()?.reply().context("asking who has the keyboard")?.focus)) {
                    Ok(focus) => shell != x11rb::NONE && focus == shell,
                    Err(e) => {
                        tracing::debug!("could not route a key: {e:#}");
                        false
                    }
                }
            } else {
                keys.passed.borrow().contains(&code)
            };
            if !pass {
                return Propagation::Proceed;
            }
            let _ = if press { keys.passed.borrow_mut().insert(code) } else { keys.passed.borrow_mut().remove(&code) };
            if let Err(e) = with_x11(|c| pass_on(c, shell, code, event, press)) {
                tracing::debug!("could not pass a key on to the shell: {e:#}");
            }
            Propagation::Stop
        };
        if press {
            top.connect_key_press_event(handler);
        } else {
            top.connect_key_release_event(handler);
        }
    }
}

/// Whether a key press is one of the shell's own shortcuts, which reach the shell wherever
/// the keyboard is: Ctrl+K (the launcher's search).
fn is_shell_shortcut(event: &gtk::gdk::EventKey) -> bool {
    use gtk::gdk::ModifierType;
    let mods = event.state()
        & (ModifierType::CONTROL_MASK | ModifierType::MOD1_MASK | ModifierType::SUPER_MASK | ModifierType::SHIFT_MASK);
    let k = event.keyval().to_lower() == gtk::gdk::keys::constants::k;
    k && mods == ModifierType::CONTROL_MASK
}

/// Sends key `code` (`event`) to the shell window `shell`.
fn pass_on(
    c: &x11rb::rust_connection::RustConnection,
    shell: Window,
    code: u8,
    event: &gtk::gdk::EventKey,
    press: bool,
) -> Result<()> {
    let root = c.setup().roots.first().map_or(x11rb::NONE, |s| s.root);
    let (x, y) = event.root_coords().unwrap_or_default();
    let clamp = |v: f64| v.clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16;
    let key = KeyPressEvent {
        response_type: if press {
            x11rb::protocol::xproto::KEY_PRESS_EVENT
        } else {
            x11rb::protocol::xproto::KEY_RELEASE_EVENT
        },
        detail: code,
        sequence: 0,
        time: event.time(),
        root,
        event: shell,
        child: x11rb::NONE,
        root_x: clamp(x),
        root_y: clamp(y),
        event_x: clamp(x),
        event_y: clamp(y),
        // X11's modifier and button bits and the keyboard layout's group (bits 13 and 14,
        // which winit reads the layout from); GDK's own bits (Super, Hyper, Meta) lie above.
        state: KeyButMask::from((event.state().bits() & 0x7fff) as u16),
        same_screen: true,
    };
    let mask = if press { EventMask::KEY_PRESS } else { EventMask::KEY_RELEASE };
    c.send_event(false, shell, mask, key)?;
    c.flush()?;
    Ok(())
}
