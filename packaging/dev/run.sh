#!/usr/bin/env bash
# Sets the machine up (packaging/dev/setup.sh), builds Tessera, and runs the shell with the
# built-in demo desk. With a display ($DISPLAY) the window opens there and stays until closed;
# without one (a headless machine) it runs under a virtual X display for RUN_SECS seconds
# (default 20) and saves a screenshot to target/demo.png. Extra arguments go to `tessera run`.
set -euo pipefail
cd "$(dirname "$0")/../.."
source packaging/dev/setup.sh

echo "==> building tessera (release)" >&2
cargo build --release --locked -p shell -p app_host

# Embedding app views needs X11: on Wayland, GTK and winit use XWayland.
unset WAYLAND_DISPLAY
export GDK_BACKEND=x11 NO_AT_BRIDGE=1
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
    XDG_RUNTIME_DIR=$(mktemp -d)
    export XDG_RUNTIME_DIR
fi
if [ -n "${DISPLAY:-}" ]; then
    echo "==> tessera run $*" >&2
    exec target/release/tessera run "$@"
fi
secs=${RUN_SECS:-20}
shot=$PWD/target/demo.png
echo "==> no display: tessera run under Xvfb for $secs s, screenshot to $shot" >&2
dbus-run-session -- xvfb-run -a -s "-screen 0 1280x800x24" \
    target/release/tessera run --exit-after "$secs" --screenshot "$shot" "$@"
echo "==> screenshot: $shot" >&2
