#!/usr/bin/env bash
# IT's one command: builds Tessera optimised, packs and signs the release, publishes it into a
# feed directory for a channel with a rollout percentage, and builds the matching .deb.
#
#   bash packaging/release.sh --feed-dir /srv/tessera --base-url https://updates.example/tessera \
#       --channel stable --rollout 25 --key release.key --key-id release-2026 [--minimum-version 1.2.0]
#       [--expires 2027-01-31T00:00:00Z] [--release-version 1.4.0]
#
# Serve the feed directory with any static web server; desks read FEED/CHANNEL.json.
# All arguments go to `tessera release publish` (see `tessera release publish --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bins >&2
feed_dir=
args=("$@")
while [[ $# -gt 0 ]]; do
    case $1 in
        --feed-dir) feed_dir=$2; shift 2 ;;
        *) shift ;;
    esac
done
[[ -n "$feed_dir" ]] || { echo "usage: packaging/release.sh --feed-dir DIR --base-url URL --key FILE --key-id ID [...]" >&2; exit 2; }
feed=$(target/release/tessera release publish --bin-dir target/release --share-dir . "${args[@]}")
echo "$feed"
version=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' <<<"$feed" | head -n1)
archive=$(ls "$feed_dir"/archives/tessera-"$version"-linux-*.tar.gz)
bash packaging/deb/build.sh "$archive" "$feed_dir/deb" >&2
echo "published $version; the .deb is in $feed_dir/deb" >&2
