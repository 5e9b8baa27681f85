#!/usr/bin/env bash
# Sets the machine up (packaging/dev/setup.sh), then runs every check CI runs: formatting,
# clippy with warnings as errors, rustdoc, the whole test suite, and a short fuzz run.
# FUZZ_SECS sets the fuzz run's length (default 30).
set -euo pipefail
cd "$(dirname "$0")/../.."
source packaging/dev/setup.sh

step() { echo "==> $*" >&2; }
started=$SECONDS

step "format"
cargo fmt --all --check
(cd broker/fuzz && cargo fmt --check)

step "clippy (warnings are errors)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "rustdoc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

step "build the binaries the integration tests run"
cargo build --workspace --bins --locked

step "tests"
cargo nextest run --workspace --locked --profile ci

step "doc tests"
cargo test --workspace --doc --locked --quiet

step "fuzz the topic parser and router for ${FUZZ_SECS:-30} s"
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
# Stable Rust: no sanitizer (safe code); a panic or a failed assertion is the crash.
if ! cargo fuzz run --sanitizer none --fuzz-dir broker/fuzz topic "$corpus" broker/fuzz/seeds/topic \
    -- -max_total_time="${FUZZ_SECS:-30}" >"$corpus/fuzz.log" 2>&1; then
    tail -n 60 "$corpus/fuzz.log" >&2
    echo "fuzzing found a crash; the input is in broker/fuzz/artifacts/topic/" >&2
    exit 1
fi
grep -E "^Done [0-9]+ runs" "$corpus/fuzz.log" >&2 || true

step "all checks passed in $((SECONDS - started)) s"
