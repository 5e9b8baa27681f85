#!/usr/bin/env bash
# Installs what building and testing Tessera needs on a Debian or Ubuntu machine, and nothing
# that is already there: build tools from apt, the Rust toolchain (rustup) if cargo is
# missing, rustfmt and clippy, cargo-nextest and cargo-fuzz. Safe to run again and again.
# Sourced by run.sh and test.sh; run it alone to prepare a machine.
set -euo pipefail

say() { echo "setup: $*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Debian packages: the C toolchain (crates with C code, libFuzzer) and pkg-config; WebKitGTK
# and GTK for the app hosts; for headless runs and the end-to-end tests, Xvfb (xvfb-run, xauth),
# Mesa's software Vulkan and OpenGL (no GPU needed), xdotool and ImageMagick; for the vault's
# keyring tests, keyutils (keyctl), gnome-keyring (a Secret Service) and dbus; nats-server, which
# linked desks run on (and the endpoint bench runs beside Tessera); Prometheus, which scrapes a
# running shell in the metrics test.
APT_PACKAGES=(
    build-essential pkg-config ca-certificates curl git
    libwebkit2gtk-4.1-dev libgtk-3-dev libsoup-3.0-dev libjavascriptcoregtk-4.1-dev libxkbcommon-dev
    xvfb xauth x11-utils xdotool imagemagick
    mesa-vulkan-drivers libvulkan1 libgl1-mesa-dri libegl1 libxkbcommon-x11-0
    fonts-dejavu-core
    keyutils gnome-keyring dbus dbus-x11
    nats-server openssl
    prometheus
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} with apt"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The native-app clients' runtimes (their tests, and the demo desk's risk app): Python 3 with
# venv, and Node with npm. Looked for as commands: a machine may have them from elsewhere
# (pyenv, NodeSource), and Debian's npm package conflicts with NodeSource's node.
runtimes=()
command -v python3 >/dev/null && python3 -c 'import venv, ensurepip' 2>/dev/null || runtimes+=(python3 python3-venv)
command -v node >/dev/null || runtimes+=(nodejs)
command -v npm >/dev/null || runtimes+=(npm)
if [ ${#runtimes[@]} -gt 0 ]; then
    say "installing ${runtimes[*]} with apt"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${runtimes[@]}" >/dev/null
fi

# Rust: the workspace needs 1.95 or newer (rust-version in Cargo.toml).
if [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    source "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null; then
    say "installing Rust 1.95 with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain 1.95.0
    # shellcheck disable=SC1091
    source "$HOME/.cargo/env"
fi
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        say "adding the $component component"
        rustup component add "$component"
    fi
done

# Cargo tools, from crates.io.
if ! command -v cargo-nextest >/dev/null; then
    say "installing cargo-nextest"
    cargo install cargo-nextest --locked --quiet
fi
if ! command -v cargo-fuzz >/dev/null; then
    say "installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi
say "ready: $(cargo --version)"
