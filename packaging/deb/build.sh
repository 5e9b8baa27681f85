#!/usr/bin/env bash
# Builds a .deb from a release archive (made by `tessera release publish`, signed or not):
#   bash packaging/deb/build.sh ARCHIVE OUT_DIR
# The package installs the build as /opt/tessera/releases/VERSION, with /opt/tessera/current
# pointing at it and /opt/tessera/bin/tessera (and /usr/bin/tessera) starting it: the install
# root the updater works in. Self-updates need that root to be writable by the desk's user
# (see the README); otherwise updates come as new packages.
# DEB_COMPRESSION picks dpkg-deb's compressor (default xz; gzip is much faster to build).
set -euo pipefail
archive=$(realpath "$1")
out=$(realpath "$2")
here=$(dirname "$(realpath "$0")")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/unpacked"
tar -xzf "$archive" -C "$work/unpacked"
version=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$work/unpacked/release.json" | head -n1)
[[ -n "$version" ]] || { echo "$archive: no version in release.json" >&2; exit 2; }
deb_version=${version//-/\~}

root="$work/pkg"
mkdir -p "$root/opt/tessera/releases" "$root/opt/tessera/bin" "$root/usr/bin" \
    "$root/usr/share/applications" "$root/usr/share/icons/hicolor/64x64/apps" "$root/DEBIAN"
mv "$work/unpacked" "$root/opt/tessera/releases/$version"
ln -s "releases/$version" "$root/opt/tessera/current"
ln -s ../current/bin/tessera "$root/opt/tessera/bin/tessera"
ln -s /opt/tessera/bin/tessera "$root/usr/bin/tessera"
install -m 0644 "$here/tessera.desktop" "$root/usr/share/applications/tessera.desktop"
icon="$root/opt/tessera/releases/$version/share/tessera/manifests/demo/icons/watchlist.png"
[[ -f "$icon" ]] && install -m 0644 "$icon" "$root/usr/share/icons/hicolor/64x64/apps/tessera.png"
size=$(du -sk "$root" | cut -f1)
arch=$(dpkg --print-architecture)
cat > "$root/DEBIAN/control" <<CONTROL
Package: tessera
Version: $deb_version
Architecture: $arch
Maintainer: Tessera <it@tessera.invalid>
Installed-Size: $size
Depends: libwebkit2gtk-4.1-0, libgtk-3-0, libvulkan1, mesa-vulkan-drivers | libvulkan1, python3
Section: misc
Priority: optional
Description: Tessera, a native desktop interop shell for trading desks
 Docks, tabs and tiles web apps, each in its own process, links them over
 FDC3 2.2, and updates itself from a signed feed with automatic rollback.
CONTROL
mkdir -p "$out"
dpkg-deb -Z"${DEB_COMPRESSION:-xz}" --root-owner-group --build "$root" "$out/tessera_${deb_version}_${arch}.deb" >&2
echo "$out/tessera_${deb_version}_${arch}.deb"
