#!/usr/bin/env bash
# Debian package check (called by tests/run.sh; needs root or sudo):
#
#   bash tests/deb_check.sh
#
# 1. packaging/release.sh --deb: the .deb of the static musl binary (the build
#    tests/musl_check.sh made), by cargo-deb (`cargo install cargo-deb
#    --locked` when missing);
# 2. dpkg -i; from /usr/bin: --version and --help; the man page is found by
#    `man`, the bash completion loads, the unit and /etc/default file are in
#    place;
# 3. examples/demo.sh with the installed binary (a real Emperor, fastrouter,
#    vassals and nginx under load; under the real-stack lock);
# 4. dpkg -r, then dpkg -P: no file of the package is left.
# A uwsgi-reload package installed before the check is refused, not replaced.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
fail() {
    printf 'deb_check: FAIL: %s\n' "$*" >&2
    exit 1
}
ok() { printf 'deb_check: ok: %s\n' "$*"; }
SUDO=
[[ $(id -u) -eq 0 ]] || SUDO=sudo
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)

if dpkg-query -W -f='${Status}' uwsgi-reload 2>/dev/null | grep -q 'installed'; then
    fail "a uwsgi-reload package is already installed; remove it first (dpkg -r uwsgi-reload)"
fi

# ---- 1. build ----
bash packaging/release.sh --deb || fail "packaging/release.sh --deb"
DEB=$(ls dist/uwsgi-reload_"$VERSION"*_amd64.deb 2>/dev/null | head -n 1)
[[ -f $DEB ]] || fail "no .deb in dist/"
ok "$DEB: $(dpkg-deb -f "$DEB" Package Version Architecture Depends | tr '\n' ' ')"

# ---- 2. install ----
$SUDO dpkg -i "$DEB" || fail "dpkg -i $DEB"
cleanup() { $SUDO dpkg -P uwsgi-reload >/dev/null 2>&1 || true; }
trap cleanup EXIT
[[ $(command -v uwsgi-reload) == /usr/bin/uwsgi-reload ]] || fail "uwsgi-reload is not /usr/bin/uwsgi-reload on PATH"
ver=$(/usr/bin/uwsgi-reload --version) || fail "--version exited $?"
[[ $ver == "uwsgi-reload $VERSION" ]] || fail "--version says $ver"
/usr/bin/uwsgi-reload --help | grep -q -- '--emperor-path' || fail "--help does not document --emperor-path"
page=$(man -w uwsgi-reload) || fail "man does not find uwsgi-reload(1)"
MANWIDTH=80 man uwsgi-reload 2>&1 | grep -q -- '--metrics-file' || fail "man uwsgi-reload does not render"
bash -c 'source /usr/share/bash-completion/completions/uwsgi-reload && complete -p uwsgi-reload' >/dev/null ||
    fail "the installed bash completion does not load"
for f in /lib/systemd/system/uwsgi-reload.service /etc/default/uwsgi-reload \
    /usr/share/zsh/vendor-completions/_uwsgi-reload /usr/share/fish/vendor_completions.d/uwsgi-reload.fish \
    /usr/share/doc/uwsgi-reload/README.md; do
    [[ -f $f ]] || fail "$f is not installed"
done
ok "installed: $ver, man page $page, completions, unit, /etc/default/uwsgi-reload"

# ---- 3. the demo with the installed binary ----
if ! UWSGI_RELOAD_BIN=/usr/bin/uwsgi-reload flock /tmp/uwsgi-reload-realstack.lock bash examples/demo.sh; then
    fail "examples/demo.sh with /usr/bin/uwsgi-reload failed"
fi
ok "examples/demo.sh passed with /usr/bin/uwsgi-reload"

# ---- 4. remove ----
files=$(dpkg -L uwsgi-reload | while read -r f; do [[ -f $f ]] && echo "$f"; done)
$SUDO dpkg -r uwsgi-reload || fail "dpkg -r"
[[ ! -e /usr/bin/uwsgi-reload ]] || fail "/usr/bin/uwsgi-reload is left after dpkg -r"
$SUDO dpkg -P uwsgi-reload || fail "dpkg -P"
left=$(for f in $files; do [[ -e $f ]] && echo "$f"; done || true)
[[ -z $left ]] || fail "left after dpkg -r and -P: $left"
trap - EXIT
ok "removed and purged, nothing left"
echo "deb_check: PASS"
