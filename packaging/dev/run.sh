#!/usr/bin/env bash
# Sets the machine up (packaging/dev/setup.sh), builds Tessera optimised, and runs it.
# The shell window arrives with the compositor issue; until then this runs what `tessera`
# does today: the broker benchmark, as a table. Extra arguments go to `tessera bench broker`.
set -euo pipefail
cd "$(dirname "$0")/../.."
source packaging/dev/setup.sh

echo "==> building tessera (release)" >&2
cargo build --release --locked -p shell
echo "==> tessera bench broker $*" >&2
exec target/release/tessera bench broker "$@"
