#!/usr/bin/env bash
# uwsgi-reload demo: a real Emperor + fastrouter + N vassals + nginx, under load,
# reloaded with the uwsgi_reload.py arguments.
#
#   bash examples/demo.sh            # 4 vassals
#   N=8 bash examples/demo.sh        # 8 vassals
#   K=2 bash examples/demo.sh        # --minimum-active-vassals 2
#
# On a fresh Debian machine it installs what is missing (uwsgi-core,
# uwsgi-plugin-python3, nginx, apache2-utils; cargo must be present), builds the
# release binary, starts the stack of examples/stack/ in a temporary directory
# (unix sockets, nginx on a free 127.0.0.1 port), waits until every vassal is
# subscribed, puts load on it (ab -c 10), runs uwsgi-reload, prints how many
# requests were sent and failed and the tool's report, and stops everything it
# started. Exit status: the tool's, or 1 if a request failed.
set -euo pipefail

N=${N:-4}
K=${K:-1}
KEY=${KEY:-demo.example}
REQUEST_PATH=${REQUEST_PATH:-/?sleep=0.01}
REPO=$(cd "$(dirname "$0")/.." && pwd)
STACK_SRC=$REPO/examples/stack

log() { printf '[demo] %s\n' "$*" >&2; }

# ---- 1. packages ----
bash "$REPO/examples/install-packages.sh"

# ---- 2. the binary ----
# UWSGI_RELOAD_BIN=path runs the demo with that binary instead (e.g. the static
# musl build: target/x86_64-unknown-linux-musl/release/uwsgi-reload).
if [[ -n ${UWSGI_RELOAD_BIN:-} ]]; then
    BIN=$(realpath "$UWSGI_RELOAD_BIN")
    log "using $BIN"
else
    log "building the release binary"
    (cd "$REPO" && cargo build --release)
    TARGET=${CARGO_TARGET_DIR:-target}
    [[ $TARGET == /* ]] || TARGET=$REPO/$TARGET
    BIN=$TARGET/release/uwsgi-reload
fi

# ---- 3. the stack ----
DIR=$(mktemp -d /tmp/uwsgi-reload-demo.XXXXXX)
chmod 755 "$DIR"
EMPEROR_PID=
NGINX_PID=
AB_PID=
cleanup() {
    local rc=$?
    set +e
    [[ -n $AB_PID ]] && kill -INT "$AB_PID" 2>/dev/null
    if [[ -n $NGINX_PID ]]; then
        kill -QUIT "$NGINX_PID" 2>/dev/null
    fi
    if [[ -n $EMPEROR_PID ]]; then
        # SIGINT: the Emperor stops every vassal, then exits (a few seconds)
        kill -INT "$EMPEROR_PID" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$EMPEROR_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$EMPEROR_PID" 2>/dev/null
    fi
    [[ -n $NGINX_PID ]] && kill -KILL -- "-$NGINX_PID" 2>/dev/null
    wait 2>/dev/null
    if [[ ${KEEP_DIR:-0} == 1 ]]; then
        log "kept $DIR"
    else
        rm -rf "$DIR"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# a free port on the loopback interface: bind port 0 and read what was given
free_port() {
    local port
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    return 1
}
PORT=$(free_port)

mkdir -p "$DIR/vassals" "$DIR/logs" "$DIR/state" "$DIR/nginx-temp"
for f in emperor.ini vassal.ini app.py nginx.conf; do
    sed -e "s|@STACK_DIR@|$DIR|g" -e "s|@KEY@|$KEY|g" -e "s|@PORT@|$PORT|g" \
        -e "s|@USER@|$(id -un)|g" "$STACK_SRC/$f" >"$DIR/$f"
done
NAMES=()
for i in $(seq 1 "$N"); do
    name=$(printf 'app_%02d' "$i")
    NAMES+=("$name")
    ln -s ../vassal.ini "$DIR/vassals/$name.ini"
done

set -m # every background job in its own process group, so cleanup can kill it whole
uwsgi --ini "$DIR/emperor.ini" >"$DIR/logs/emperor.out" 2>&1 &
EMPEROR_PID=$!
nginx -p "$DIR" -c "$DIR/nginx.conf" -e "$DIR/logs/nginx-error.log" >"$DIR/logs/nginx.out" 2>&1 &
NGINX_PID=$!
set +m
log "stack in $DIR: emperor pid $EMPEROR_PID, nginx pid $NGINX_PID on 127.0.0.1:$PORT, $N vassals"

# ---- 4. wait until every vassal accepts and is subscribed ----
# (uwsgi --connect-and-read prints what it read on stderr)
stats() { uwsgi --connect-and-read "$1" 2>&1 >/dev/null || true; }
# vassal names with accepting == 1 (Emperor stats are pretty-printed, one field a line)
accepting_vassals() {
    stats "$DIR/emperor-stats.sock" | awk -F'"' '
        /"id":/ { id = $4 }
        /"accepting":/ { if ($3 ~ /:1,?$/) { sub(/\.ini$/, "", id); print id } }'
}
# socket stems of fastrouter nodes with death_mark == 0
live_nodes() {
    stats "$DIR/fastrouter-stats.sock" | awk -F'"' '
        /"name":/ { name = $4 }
        /"death_mark":/ { if ($3 ~ /:0,?$/) { n = name; sub(/.*\//, "", n); sub(/\.sock$/, "", n); print n } }'
}
# docs/UWSGI.md §9.6: the accepting hook can write "S" before the master FIFO exists,
# leaving the vassal accepting but never subscribed. Unblock such a vassal.
subscriptions_unblocked() {
    awk '/\*\*\* Starting uWSGI/ { s = 0 } /subscriptions re-enabled/ { s = 1 } /subscriptions blocked/ { s = 0 }
         END { exit !s }' "$DIR/logs/$1.log" 2>/dev/null
}
wait_subscribed() {
    local deadline=$((SECONDS + 90)) acc live missing name
    declare -A since=()
    while :; do
        acc=" $(accepting_vassals | tr '\n' ' ') "
        live=" $(live_nodes | tr '\n' ' ') "
        missing=0
        for name in "${NAMES[@]}"; do
            if [[ $live == *" $name "* && $acc == *" $name "* ]]; then
                continue
            fi
            missing=$((missing + 1))
            if [[ $acc == *" $name "* && $live != *" $name "* ]]; then
                : "${since[$name]:=$SECONDS}"
                if ((SECONDS - since[$name] >= 4)) && ! subscriptions_unblocked "$name"; then
                    log "$name accepts but never subscribed (docs/UWSGI.md §9.6): writing S to its FIFO"
                    echo S >"$DIR/$name.fifo"
                    since[$name]=$((SECONDS + 10))
                fi
            fi
        done
        ((missing == 0)) && return 0
        if ((SECONDS > deadline)); then
            log "timed out waiting for the vassals; emperor log:"
            tail -n 30 "$DIR/logs/emperor.log" >&2
            return 1
        fi
        sleep 0.2
    done
}
wait_subscribed
log "all $N vassals accept and are subscribed under key $KEY"

worker_pid() { awk '/^worker pid=/ { sub(/^worker pid=/, ""); p = $1 } END { print p }' "$DIR/state/$1.log"; }
declare -A WORKER_BEFORE=()
for name in "${NAMES[@]}"; do WORKER_BEFORE[$name]=$(worker_pid "$name"); done

# ---- 5. load + reload ----
log "load: ab -c 10 http://127.0.0.1:$PORT$REQUEST_PATH"
set -m
ab -l -r -c 10 -t 600 -n 10000000 "http://127.0.0.1:$PORT$REQUEST_PATH" >"$DIR/ab.out" 2>&1 &
AB_PID=$!
set +m
sleep 1

# The rollout's picture (outside $DIR, which cleanup removes).
TIMELINE=${TIMELINE:-$(mktemp --suffix=.svg /tmp/uwsgi-reload-timeline.XXXXXX)}
CMD=("$BIN" --emperor-path "$DIR/vassals"
    --fastrouter-stats-socket "$DIR/fastrouter-stats.sock"
    --emperor-stats-socket "$DIR/emperor-stats.sock"
    --vassal-config-file-suffix .ini
    --minimum-active-vassals "$K" --timeout 60 --check-interval 0.1
    --timeline "$TIMELINE")
log "running: ${CMD[*]}"
echo "------------------------------------------------------------------ uwsgi-reload report" >&2
RELOAD_RC=0
"${CMD[@]}" || RELOAD_RC=$?
echo "------------------------------------------------------------------" >&2

sleep 1
kill -INT "$AB_PID" 2>/dev/null || true
wait "$AB_PID" 2>/dev/null || true
AB_PID=

# ---- 6. results ----
field() { awk -F: -v k="$1" '$1 == k { gsub(/[ \t]/, "", $2); print $2 }' "$DIR/ab.out"; }
SENT=$(field 'Complete requests')
FAILED=$(field 'Failed requests')
NON2XX=$(field 'Non-2xx responses')
SENT=${SENT:-0} FAILED=${FAILED:-0} NON2XX=${NON2XX:-0}
echo
echo "requests sent:      $SENT"
echo "failed requests:    $FAILED (connect, receive, length, exceptions)"
echo "non-2xx responses:  $NON2XX"
echo "uwsgi-reload exit:  $RELOAD_RC"
echo "timeline:           $TIMELINE (each vassal's phases, live count and K per key)"
for name in "${NAMES[@]}"; do
    echo "$name: worker pid ${WORKER_BEFORE[$name]} -> $(worker_pid "$name")"
done
if ((FAILED + NON2XX > 0)); then
    echo "ab output:"
    sed -n '/^Complete requests/,/^Total transferred/p' "$DIR/ab.out"
    exit 1
fi
exit "$RELOAD_RC"
