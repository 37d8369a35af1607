#!/usr/bin/env bash
# Planted regressions: tests that fail when what they name breaks.
#
#   bash tests/mutants.sh [NAME...]     (NAME: a patch's file name, no .patch)
#
# Each tests/mutants/*.patch plants one regression (its first lines say
# which) and names the tests that must catch it (`Caught-by:` lines; a
# `realstack` prefix runs that command under the real-stack lock). The script
# copies the working tree (without target/ and .git) to a scratch directory,
# and for each patch: runs every Caught-by command on the unpatched copy
# (they must pass: the baseline), applies the patch, runs them again (each
# must FAIL), and reverses the patch. The repository itself is never
# changed. Builds go to target/mutants/ (kept between runs). Exit status 1
# if a mutant survived (some Caught-by command passed with it) or a baseline
# failed. MUTANTS_BASELINE=0 skips the baseline runs.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LOCK=/tmp/uwsgi-reload-realstack.lock
SCRATCH=$(mktemp -d /tmp/uwsgi-reload-mutants.XXXXXX)
trap 'rm -rf "$SCRATCH"' EXIT
export CARGO_TARGET_DIR=$ROOT/target/mutants

log() { printf '[mutants] %s\n' "$*" >&2; }

tar -C "$ROOT" --exclude=./target --exclude=./.git --exclude=./fuzz/target -cf - . | tar -C "$SCRATCH" -xf -

run_cmd() { # the words of one Caught-by line
    local words=("$@")
    if [[ ${words[0]} == realstack ]]; then
        words=(flock "$LOCK" "${words[@]:1}")
    fi
    (cd "$SCRATCH" && "${words[@]}") >"$SCRATCH/last.log" 2>&1
}

patches=()
if (($#)); then
    for n in "$@"; do patches+=("$ROOT/tests/mutants/$n.patch"); done
else
    patches=("$ROOT"/tests/mutants/*.patch)
fi

bad=()
results=()
for p in "${patches[@]}"; do
    name=$(basename "$p" .patch)
    mapfile -t cmds < <(sed -n 's/^Caught-by: //p' "$p")
    t0=$SECONDS
    if [[ ${MUTANTS_BASELINE:-1} != 0 ]]; then
        for c in "${cmds[@]}"; do
            read -ra w <<<"$c"
            log "$name: baseline: $c"
            if ! run_cmd "${w[@]}"; then
                tail -30 "$SCRATCH/last.log" >&2
                bad+=("$name (baseline failed: $c)")
            fi
        done
    fi
    (cd "$SCRATCH" && git apply "$p") || { bad+=("$name (does not apply)"); continue; }
    for c in "${cmds[@]}"; do
        read -ra w <<<"$c"
        log "$name: planted: $c"
        if run_cmd "${w[@]}"; then
            bad+=("$name SURVIVED: $c")
            results+=("SURVIVED  $name  $c")
        else
            results+=("caught    $name  $c")
        fi
    done
    (cd "$SCRATCH" && git apply -R "$p")
    log "$name: $((SECONDS - t0)) s"
done

printf '  %s\n' "${results[@]}" >&2
if ((${#bad[@]})); then
    log "FAILED: ${bad[*]}"
    exit 1
fi
log "every planted regression was caught"
