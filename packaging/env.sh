# Sourced by packaging/release.sh and tests/musl_check.sh: the environment of
# the one static release build, made reproducible (the same sources give the
# same bytes, wherever they are checked out):
# - SOURCE_DATE_EPOCH: the last commit's time unless already set; every
#   timestamp in the tarball and the .deb is this one;
# - --remap-path-prefix: the checkout, the target directory and CARGO_HOME
#   (registry sources) appear under fixed names in the binary;
# - cargo --locked (in the scripts): exactly the versions in Cargo.lock.
# Both scripts use the same RUSTFLAGS, so the musl build is made once.
TARGET=x86_64-unknown-linux-musl
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO/Cargo.toml" | head -n 1)
if [[ -z ${SOURCE_DATE_EPOCH:-} ]]; then
    SOURCE_DATE_EPOCH=$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || echo 0)
fi
export SOURCE_DATE_EPOCH
TARGET_DIR=${CARGO_TARGET_DIR:-target}
[[ $TARGET_DIR == /* ]] || TARGET_DIR=$REPO/$TARGET_DIR
export RUSTFLAGS="--remap-path-prefix=$REPO=/build/uwsgi-reload --remap-path-prefix=$TARGET_DIR=/build/target --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
