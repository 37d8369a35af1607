#!/usr/bin/env bash
# Installs the Debian packages that the demo (examples/demo.sh), the tests
# (tests/run.sh) and the benchmark (examples/bench.sh) need, if any is
# missing (apt-get update first), and checks that cargo is there.
# man-db/groff-base, zsh and fish check the generated man page and shell
# completions (tests/generate.rs); systemd's systemd-analyze checks the units
# in examples/systemd/; python3-venv holds the private venv in which
# tests/metrics.rs installs the Prometheus text parser (prometheus_client);
# librsvg2-bin (rsvg-convert) and netpbm (pngtopnm) rasterise and read back
# the --timeline picture in tests/timeline.rs.
#
#   bash examples/install-packages.sh [EXTRA_PACKAGE ...]
set -euo pipefail

log() { printf '[packages] %s\n' "$*" >&2; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
for pkg in uwsgi-core uwsgi-plugin-python3 nginx apache2-utils man-db groff-base zsh fish systemd \
    python3 python3-venv librsvg2-bin netpbm "$@"; do
    installed "$pkg" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    SUDO=
    [[ $(id -u) -eq 0 ]] || SUDO=sudo
    log "installing ${missing[*]}"
    $SUDO apt-get update
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
command -v cargo >/dev/null || { log "cargo is required (https://rustup.rs)"; exit 1; }
