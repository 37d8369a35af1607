#!/usr/bin/env bash
# Reproducible release check (called by tests/run.sh after tests/musl_check.sh,
# whose musl build it reuses):
#
#   bash tests/release_check.sh
#
# 1. packaging/release.sh in this checkout: dist/uwsgi-reload-VERSION-
#    x86_64-linux-musl.tar.gz and dist/SHA256SUMS, which `sha256sum -c` accepts;
# 2. the tarball holds the binary, the man page, the three completions, the
#    systemd units, README.md and LICENSE, owned by 0:0, and its binary runs;
# 3. packaging/release.sh again from a copy of the sources at another path,
#    with its own target directory (a build from scratch): the two tarballs
#    must be byte-identical (--locked, SOURCE_DATE_EPOCH, --remap-path-prefix).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
fail() {
    printf 'release_check: FAIL: %s\n' "$*" >&2
    exit 1
}
ok() { printf 'release_check: ok: %s\n' "$*"; }

SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 1700000000)
export SOURCE_DATE_EPOCH
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
NAME=uwsgi-reload-$VERSION-x86_64-linux-musl
TARBALL=dist/$NAME.tar.gz

# ---- 1. build ----
bash packaging/release.sh || fail "packaging/release.sh"
[[ -f $TARBALL ]] || fail "$TARBALL was not written"
(cd dist && sha256sum -c SHA256SUMS) || fail "dist/SHA256SUMS does not match"
ok "$TARBALL, $(stat -c %s "$TARBALL") bytes; SHA256SUMS verifies"

# ---- 2. contents ----
WORK=$(mktemp -d /tmp/uwsgi-reload-release.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
want="$NAME/
$NAME/LICENSE
$NAME/README.md
$NAME/completions/
$NAME/completions/_uwsgi-reload
$NAME/completions/uwsgi-reload.bash
$NAME/completions/uwsgi-reload.fish
$NAME/systemd/
$NAME/systemd/uwsgi-emperor.service
$NAME/systemd/uwsgi-emperor.service.d/
$NAME/systemd/uwsgi-emperor.service.d/rolling-reload.conf
$NAME/systemd/uwsgi-reload.default
$NAME/systemd/uwsgi-reload.service
$NAME/uwsgi-reload
$NAME/uwsgi-reload.1"
got=$(tar -tzf "$TARBALL")
[[ $got == "$want" ]] || fail "tarball contents differ:$(diff <(echo "$want") <(echo "$got"))"
owners=$(tar -tvzf "$TARBALL" | awk '{print $2}' | sort -u)
[[ $owners == 0/0 ]] || fail "tarball entries are not owned by 0/0: $owners"
tar -xzf "$TARBALL" -C "$WORK"
ver=$("$WORK/$NAME/uwsgi-reload" --version) || fail "the packed binary does not run"
[[ $ver == "uwsgi-reload $VERSION" ]] || fail "--version says $ver"
cmp -s <("$WORK/$NAME/uwsgi-reload" --generate man) "$WORK/$NAME/uwsgi-reload.1" || fail "the man page is not the binary's own"
ok "contents, owners and the packed binary ($ver)"

# ---- 3. a second build elsewhere, from scratch ----
mkdir -p "$WORK/src"
git ls-files -z --cached --others --exclude-standard |
    tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -C "$WORK/src" -xf -
(cd "$WORK/src" && CARGO_TARGET_DIR="$WORK/target" bash packaging/release.sh) ||
    fail "the second build (in $WORK/src) failed"
if ! cmp "$TARBALL" "$WORK/src/dist/$NAME.tar.gz"; then
    mkdir -p "$WORK/a" "$WORK/b"
    tar -xzf "$TARBALL" -C "$WORK/a"
    tar -xzf "$WORK/src/dist/$NAME.tar.gz" -C "$WORK/b"
    diff -r "$WORK/a" "$WORK/b" >&2 || true
    fail "two builds of the same sources differ (try diffoscope on the two tarballs)"
fi
cmp -s dist/SHA256SUMS "$WORK/src/dist/SHA256SUMS" || fail "SHA256SUMS differ"
ok "two builds at different paths are byte-identical ($(cut -d' ' -f1 dist/SHA256SUMS))"
echo "release_check: PASS"
