#!/usr/bin/env bash
# Sets the machine up (packaging/dev/setup.sh), then runs every check CI runs: formatting,
# clippy with warnings as errors, rustdoc, the whole test suite, and a short run of every fuzz target.
# FUZZ_SECS sets each fuzz target's run length (default 20).
set -euo pipefail
cd "$(dirname "$0")/../.."
source packaging/dev/setup.sh

step() { echo "==> $*" >&2; }
started=$SECONDS

step "format"
cargo fmt --all --check
(cd broker/fuzz && cargo fmt --check)
(cd storage/fuzz && cargo fmt --check)
(cd shell/fuzz && cargo fmt --check)

step "clippy (warnings are errors)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "rustdoc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

step "build the binaries the integration tests run"
cargo build --workspace --bins --locked

step "client libraries: installed from the repository, their own tests, the Node types"
bash packaging/dev/clients.sh
target/clients/venv/bin/python -m unittest discover -s shell/clients/python/tests
(cd shell/clients/node && npm test --silent && npm run --silent typecheck)

step "tests"
cargo nextest run --workspace --locked --profile ci

step "doc tests"
cargo test --workspace --doc --locked --quiet

# Every parser of untrusted input has a fuzz target: CRATE/fuzz, target name, seed inputs.
fuzz() {
    local crate=$1 target=$2
    step "fuzz $crate/$target for ${FUZZ_SECS:-20} s"
    local corpus
    corpus=$(mktemp -d)
    # Stable Rust: no sanitizer (safe code); a panic or a failed assertion is the crash.
    if ! cargo fuzz run --sanitizer none --fuzz-dir "$crate/fuzz" "$target" "$corpus" "$crate/fuzz/seeds/$target" \
        -- -max_total_time="${FUZZ_SECS:-20}" >"$corpus/fuzz.log" 2>&1; then
        tail -n 60 "$corpus/fuzz.log" >&2
        echo "fuzzing found a crash; the input is in $crate/fuzz/artifacts/$target/" >&2
        exit 1
    fi
    grep -E "^Done [0-9]+ runs" "$corpus/fuzz.log" >&2 || true
    rm -rf "$corpus"
}
fuzz broker topic
fuzz broker frame
fuzz broker appd
fuzz broker dacp
fuzz broker native
fuzz broker traceparent
fuzz broker stamp
fuzz broker group
fuzz storage record
fuzz storage kv
fuzz shell feed
fuzz shell policy
fuzz shell http
fuzz shell link
fuzz shell redact

step "all checks passed in $((SECONDS - started)) s"
