#!/usr/bin/env bash
# The uWSGI version matrix (docs/VERSIONS.md): the core end-to-end scenarios
# of tests/e2e.rs and tests/e2e_fleet.rs, unchanged, on several uWSGI
# versions built from PyPI sources, and on Debian's uwsgi-core.
#
#   bash tests/matrix.sh                  # 2.0.18 2.0.24 2.0.28 2.0.31 debian
#   bash tests/matrix.sh 2.0.27 debian    # any versions ("debian": /usr/bin/uwsgi)
#   MATRIX_ONLY=e2e_n4_k1 bash tests/matrix.sh 2.0.27   # some scenarios only
#
# For each PyPI version: `pip download uwsgi==X --no-binary :all:` into a
# venv of Debian's python3, then `python uwsgiconfig.py --build` with a build
# profile written here (buildconf/uwsgi-reload-matrix.ini): only the plugins
# the stack needs (corerouter, fastrouter) and Python built in. 2.0.18's
# Python plugin does not compile against Python 3.11 (PyThreadState has no
# recursion_depth there), so 2.0.18 is built without any language and its
# vassals answer through a CGI shell script that sleeps the request's delay
# (UWSGI_APP=cgi: the cgi plugin behind an internal route, see
# tests/support/stack/uwsgi_under_test.rs; routing needs libpcre3-dev).
#
# Then, per version, the same e2e tests with UWSGI_BIN (the binary) and
# UWSGI_APP (plugin | builtin | cgi) set; each test appends its outcome
# to E2E_RECORD (tests/support/stack/record.rs). The real stacks run under
# `flock /tmp/uwsgi-reload-realstack.lock` (one real stack per machine).
#
# Everything (venv, sources, builds, pip's cache: none) lives in one temp
# dir, removed at the end (MATRIX_KEEP=1 keeps it). The summary table is
# printed and written to $MATRIX_SUMMARY (default target/uwsgi-matrix.md).
# Exit status: 0 if every build and every scenario passed.
set -uo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

log() { printf '[matrix] %s\n' "$*" >&2; }

VERSIONS=("$@")
((${#VERSIONS[@]})) || VERSIONS=(2.0.18 2.0.24 2.0.28 2.0.31 debian)
SUMMARY=${MATRIX_SUMMARY:-target/uwsgi-matrix.md}
LOCK=/tmp/uwsgi-reload-realstack.lock
# drain: 3 rollouts in a row per version, not the 10 of tests/run.sh
DRAIN_ROLLOUTS=3

# The scenarios: test name, then its label in the table (with its K).
E2E_TESTS=(e2e_n4_k1 e2e_n4_k3 e2e_failing_vassal_stops_the_rollout
    e2e_config_touched_by_someone_else e2e_repairs_a_vassal_that_never_resubscribes)
FLEET_TESTS=(fleet_drain_10_rollouts_n4_k1)
# MATRIX_ONLY=name,name: only these scenarios (e.g. a quick look at one version)
if [[ -n ${MATRIX_ONLY:-} ]]; then
    keep() { local t out=(); for t in "$@"; do [[ ,$MATRIX_ONLY, == *,$t,* ]] && out+=("$t"); done; echo "${out[*]}"; }
    read -r -a E2E_TESTS <<<"$(keep "${E2E_TESTS[@]}")"
    read -r -a FLEET_TESTS <<<"$(keep "${FLEET_TESTS[@]}")"
fi
declare -A LABEL=(
    [e2e_n4_k1]="rollout N=4 K=1"
    [e2e_n4_k3]="rollout N=4 K=3 (N-1)"
    [e2e_failing_vassal_stops_the_rollout]="broken deploy stopped, K=1"
    [e2e_config_touched_by_someone_else]="foreign touch, K=2"
    [e2e_repairs_a_vassal_that_never_resubscribes]="repair (S on the FIFO), N=3 K=1"
    [fleet_drain_10_rollouts_n4_k1]="drain: $DRAIN_ROLLOUTS rollouts, ref==0 before each touch, K=1"
)

T_START=$SECONDS
TMP=$(mktemp -d /tmp/uwsgi-matrix.XXXXXX)
if [[ ${MATRIX_KEEP:-} == 1 ]]; then
    log "keeping $TMP"
else
    trap 'rm -rf "$TMP"' EXIT
fi

# ---- packages: the stack's, and what the builds need ----
bash examples/install-packages.sh gcc python3-dev python3-venv libpcre3-dev zlib1g-dev || exit 1

# ---- the test binaries, built once (no lock needed) ----
nice -n 10 cargo test --release --test e2e --test e2e_fleet --no-run >"$TMP/cargo-build.log" 2>&1 || {
    tail -40 "$TMP/cargo-build.log" >&2
    log "cannot build the e2e tests"
    exit 1
}

# ---- builds ----
# app kind per version: what the vassals of that binary can run
app_kind() {
    case $1 in
        debian) echo plugin ;;
        2.0.1[0-9] | 2.0.1[0-9].* | 2.0.20 | 2.0.20.*) echo cgi ;;
        *) echo builtin ;;
    esac
}

write_profile() { # $1 = app kind; writes the build profile on stdout
    local plugins="corerouter, fastrouter" pcre=false
    if [[ $1 == cgi ]]; then
        pcre=true # internal routing (the route to the CGI script) needs PCRE
        plugins="cgi, $plugins"
    else
        plugins="python, $plugins"
    fi
    cat <<EOF
; written by tests/matrix.sh: what the e2e stack needs, nothing more
[uwsgi]
main_plugin =
inherit =
xml = false
yaml = true
json = false
ssl = false
pcre = $pcre
routing = $pcre
debug = false
unbit = false
malloc_implementation = libc
extras =
plugins =
bin_name = uwsgi
append_version =
plugin_dir = .
embedded_plugins = $plugins
as_shared_library = false
locking = auto
event = auto
timer = auto
filemonitor = auto
blacklist =
whitelist =
embed_files =
embed_config =
EOF
}

declare -A BIN BUILD_NOTE TIME_BUILD TIME_TESTS TIME_RUN
build() { # $1 = version; sets BIN[$1] or BUILD_NOTE[$1]
    local v=$1 kind t0=$SECONDS
    kind=$(app_kind "$v")
    if [[ $v == debian ]]; then
        BIN[$v]=$(command -v uwsgi) || BUILD_NOTE[$v]="no uwsgi in PATH (uwsgi-core)"
        return
    fi
    if [[ ! -x $TMP/venv/bin/python ]]; then
        /usr/bin/python3 -m venv "$TMP/venv" >"$TMP/venv.log" 2>&1 || {
            BUILD_NOTE[$v]="python3 -m venv failed: $(tail -1 "$TMP/venv.log")"
            return
        }
    fi
    mkdir -p "$TMP/src"
    log "uWSGI $v: download (PyPI sdist), build ($kind)"
    if ! PIP_CACHE_DIR="$TMP/pip-cache" "$TMP/venv/bin/pip" download --no-cache-dir --no-deps \
        --no-binary :all: --disable-pip-version-check -d "$TMP/src" "uwsgi==$v" >"$TMP/download-$v.log" 2>&1; then
        BUILD_NOTE[$v]="pip download uwsgi==$v failed: $(tail -1 "$TMP/download-$v.log")"
        return
    fi
    local src="$TMP/src/uwsgi-$v"
    tar -xzf "$TMP/src/uwsgi-$v.tar.gz" -C "$TMP/src" || {
        BUILD_NOTE[$v]="cannot unpack uwsgi-$v.tar.gz"
        return
    }
    write_profile "$kind" >"$src/buildconf/uwsgi-reload-matrix.ini"
    if ! (cd "$src" && CPUCOUNT=2 nice -n 10 "$TMP/venv/bin/python" uwsgiconfig.py \
        --build uwsgi-reload-matrix) >"$TMP/build-$v.log" 2>&1 || [[ ! -x $src/uwsgi ]]; then
        tail -25 "$TMP/build-$v.log" >&2
        BUILD_NOTE[$v]="build failed: $(grep -m1 -E 'error|Error' "$TMP/build-$v.log" || tail -1 "$TMP/build-$v.log")"
        return
    fi
    BIN[$v]=$src/uwsgi
    TIME_BUILD[$v]=$((SECONDS - t0))
    log "uWSGI $v: built in ${TIME_BUILD[$v]} s"
}

# ---- runs ----
declare -A RESULT # "$v|$test" -> requests<TAB>failed<TAB>lowest<TAB>exit<TAB>result
run_tests() { # $1 = version
    local v=$1 kind t0=$SECONDS rec="$TMP/record-$v.tsv" out="$TMP/tests-$v.log"
    kind=$(app_kind "$v")
    : >"$rec"
    log "uWSGI $v ($("${BIN[$v]}" --version)): ${#E2E_TESTS[@]} + ${#FLEET_TESTS[@]} scenarios, UWSGI_APP=$kind"
    local -a envs=(env UWSGI_BIN="${BIN[$v]}" UWSGI_APP="$kind" E2E_RECORD="$rec"
        E2E_DRAIN_ROLLOUTS=$DRAIN_ROLLOUTS)
    local -a lock=()
    command -v flock >/dev/null && lock=(flock "$LOCK")
    : >"$out"
    if ((${#E2E_TESTS[@]})); then
        "${lock[@]}" "${envs[@]}" cargo test --release --test e2e -- --ignored --test-threads=1 --exact \
            "${E2E_TESTS[@]}" >>"$out" 2>&1
    fi
    if ((${#FLEET_TESTS[@]})); then
        "${lock[@]}" "${envs[@]}" cargo test --release --test e2e_fleet -- --ignored --test-threads=1 --exact \
            "${FLEET_TESTS[@]}" >>"$out" 2>&1
    fi
    TIME_TESTS[$v]=$((SECONDS - t0))
    # the tests' own time, without waiting for the lock: libtest's "finished in"
    TIME_RUN[$v]=$(awk '/^test result:/ { for (i = 1; i < NF; i++) if ($i == "in") { sub(/s$/, "", $(i+1)); t += $(i+1) } }
        END { printf "%d", t }' "$out")
    local t line
    for t in "${E2E_TESTS[@]}" "${FLEET_TESTS[@]}"; do
        line=$(awk -F'\t' -v t="$t" '$1 == t { sub(/^[^\t]*\t/, ""); l = $0 } END { print l }' "$rec")
        if [[ -z $line ]]; then
            # the test stopped before its checks (e.g. the stack did not come up)
            if grep -q "^test $t \.\.\. ok" "$out"; then line=$'-\t-\t-\t-\tpass'; else line=$'-\t-\t-\t-\tFAIL'; fi
        fi
        RESULT["$v|$t"]=$line
    done
    if grep -q "^test .* FAILED" "$out"; then
        log "uWSGI $v: failures; the log's tail:"
        grep -E "^test |panicked|problem\(s\)|^  \* " "$out" | head -40 >&2
    fi
    log "uWSGI $v: tests took ${TIME_TESTS[$v]} s (${TIME_RUN[$v]} s running, the rest waiting for the lock)"
}

for v in "${VERSIONS[@]}"; do build "$v"; done
for v in "${VERSIONS[@]}"; do [[ -n ${BIN[$v]:-} ]] && run_tests "$v"; done

# ---- summary ----
failures=0
{
    echo "| uWSGI | app | scenario | requests | failed | lowest live | exit | result |"
    echo "|---|---|---|---:|---:|---:|---:|---|"
    for v in "${VERSIONS[@]}"; do
        if [[ -z ${BIN[$v]:-} ]]; then
            echo "| $v | $(app_kind "$v") | (not built: ${BUILD_NOTE[$v]}) | | | | | FAIL |"
            failures=$((failures + 1))
            continue
        fi
        ver=$("${BIN[$v]}" --version)
        for t in "${E2E_TESTS[@]}" "${FLEET_TESTS[@]}"; do
            IFS=$'\t' read -r req failed lowest code result <<<"${RESULT["$v|$t"]}"
            [[ $result == pass ]] || failures=$((failures + 1))
            echo "| $ver | $(app_kind "$v") | ${LABEL[$t]} | $req | $failed | $lowest | $code | $result |"
        done
    done
} >"$TMP/summary.md"
{
    echo "uWSGI version matrix, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); times:"
    for v in "${VERSIONS[@]}"; do
        echo "  $v: build ${TIME_BUILD[$v]:-0} s, tests ${TIME_TESTS[$v]:-0} s (of which running ${TIME_RUN[$v]:-0} s)"
    done
    echo "  total: $((SECONDS - T_START)) s"
    echo
    cat "$TMP/summary.md"
} >"$TMP/summary.txt"
mkdir -p "$(dirname "$SUMMARY")"
cp "$TMP/summary.txt" "$SUMMARY"
cat "$TMP/summary.txt"
log "table written to $SUMMARY"
if ((failures)); then
    log "FAILED: $failures scenario(s) or build(s)"
    exit 1
fi
log "every version passed every scenario"
