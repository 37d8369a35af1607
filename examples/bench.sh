#!/usr/bin/env bash
# uwsgi-reload benchmark: wall time of a full rollout against the physical
# floor uWSGI itself sets, on a real Emperor + fastrouter + N vassals + nginx
# under ab load.
#
#   bash examples/bench.sh                     # N = 4 8 16 32, 3 runs each, K = 1
#   NS="8" RUNS=5 bash examples/bench.sh       # other sizes / more runs
#   ORIG=/path/to/uwsgi_reload.py bash examples/bench.sh   # side by side with it
#   NS=8 KS="1 half" APP_START=2 LAZY=1 MODES="early orig" ORIG=... bash examples/bench.sh
#
# Environment: NS (vassal counts), RUNS (rollouts per N, K and mode), KS
# (--minimum-active-vassals values, "half" = N/2; default K, itself default
# 1), MODES (what rolls out, in turn on the same stack: "plain" this tool
# with --no-early-announce, "early" with --early-announce, "default" with
# neither (for the example stack's hook pattern: announced once its own log
# shows subscriptions on, docs/UWSGI.md §9.6.1), "nodrain" with
# --no-drain, "orig" uwsgi_reload.py; default "plain early", plus "orig"
# when ORIG is set), ORIG (a python3 copy of uwsgi_reload.py, kept outside
# this repository, run as its README says: python3 ORIG --emperor-path ...
# --fastrouter-stats-socket ... --emperor-stats-socket ...
# --minimum-active-vassals K), APP_START (seconds the app sleeps at import,
# default 0), LAZY=1 (lazy-apps = true in every vassal),
# SOLO (hand-timed single reloads per N for the floor, default 3),
# REQUEST_PATH (default /?sleep=0.01), CONCURRENCY (ab -c, default 10),
# KEEP_DIR=1 (keep the stack directories and every log), TOOL_PREFIX (a
# command put before uwsgi-reload, e.g. "nice -n -10"; empty by default).
#
# What it does, per N:
#  1. starts the stack of examples/stack/ in a mktemp directory (unix
#     sockets, nginx on a free 127.0.0.1 port), waits until every vassal
#     accepts and is subscribed (writing S to the FIFO of a vassal that
#     accepts but never subscribed: docs/UWSGI.md §9.6);
#  2. measures the floor by hand, under the same ab load: touches one vassal
#     (mtime = max(now, last_mod + 1), on the link) and polls both stats
#     sockets as fast as possible until it accepts again and its node is back
#     (SOLO times, a different vassal each time): T_solo. The floor of a
#     rollout is T_solo x waves, waves = ceil(N / (N - K)) (at most N - K
#     vassals in flight keeps K live);
#  3. for each K, RUNS times, each mode in turn: starts `ab -c CONCURRENCY`
#     on nginx and a sampler of the fastrouter (every 20 ms: the time each
#     vassal's node is out of rotation), runs `/usr/bin/time -f '%e %U %S %M'`
#     on the tool (uwsgi-reload ... --json, or uwsgi_reload.py), stops ab,
#     and prints wall, floor, wall/floor, time out of rotation per vassal,
#     the tool's CPU (user+sys, children included: uwsgi_reload.py's `uwsgi
#     --connect-and-read` processes count) and peak RSS, its stats reads,
#     and ab's failed and non-2xx responses;
#  4. from the tool's JSON events: per-vassal phases (drain, touched ->
#     reload_seen, -> accepting, -> subscribed) and the tool's own share: the
#     gap between a `subscribed` and the start (drain_started or touched) of
#     the vassal it lets go, and touched -> reload_seen (should be under one
#     check interval, 100 ms); and the critical path (the chain of vassals,
#     each started by the `subscribed` of the one before, that ends with the
#     last vassal), split into the tool's time (start-up, drains, gaps, exit)
#     and uWSGI's (touched -> subscribed, as the tool saw it). The tool's
#     run-queue wait (time runnable but without a CPU, /proc/PID/schedstat)
#     shows how much CPU contention delayed its observations.
# A table of every run is printed at the end. Everything started is stopped
# on exit (trap). Loopback and unix sockets only. Exit status 1 if a request
# failed or a rollout did not exit 0.
set -euo pipefail

NS=${NS:-"4 8 16 32"}
RUNS=${RUNS:-3}
K=${K:-1}
KS=${KS:-$K}
APP_START=${APP_START:-0}
LAZY=${LAZY:-0}
ORIG=${ORIG:-}
# DRAIN ("on", "off"), the older spelling of MODES: on = plain, off = nodrain
if [[ -n ${DRAIN:-} && -z ${MODES:-} ]]; then
    MODES=$(sed -e 's/\<on\>/plain/' -e 's/\<off\>/nodrain/' <<<"$DRAIN")
fi
if [[ -n $ORIG ]]; then
    [[ -r $ORIG ]] || { echo "ORIG=$ORIG: not a readable file (a python3 copy of uwsgi_reload.py expected)" >&2; exit 2; }
    MODES=${MODES:-plain early orig}
else
    MODES=${MODES:-plain early}
fi
[[ " $MODES " == *" orig "* && -z $ORIG ]] && { echo "MODES has orig: set ORIG to a copy of uwsgi_reload.py" >&2; exit 2; }
TOOL_PREFIX=${TOOL_PREFIX:-}
SOLO=${SOLO:-3}
REQUEST_PATH=${REQUEST_PATH:-/?sleep=0.01}
CONCURRENCY=${CONCURRENCY:-10}
KEY=${KEY:-bench.example}
REPO=$(cd "$(dirname "$0")/.." && pwd)
STACK_SRC=$REPO/examples/stack

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---- packages ----
bash "$REPO/examples/install-packages.sh" time python3
[[ -x /usr/bin/time ]] || { log "/usr/bin/time is missing (apt-get install time)"; exit 1; }

# ---- the binary ----
log "building the release binary"
(cd "$REPO" && cargo build --release)
TARGET_DIR=${CARGO_TARGET_DIR:-target}
[[ $TARGET_DIR == /* ]] || TARGET_DIR=$REPO/$TARGET_DIR
BIN=$TARGET_DIR/release/uwsgi-reload
[[ -x $BIN ]] || { log "no $BIN"; exit 1; }

ROOT=$(mktemp -d /tmp/uwsgi-reload-bench.XXXXXX)
chmod 755 "$ROOT"
RESULTS=$ROOT/results.tsv
EMPEROR_PID=
NGINX_PID=
AB_PID=
SAMPLER_PID=

stop_ab() {
    if [[ -n $AB_PID ]]; then
        kill -INT "$AB_PID" 2>/dev/null || true
        wait "$AB_PID" 2>/dev/null || true
        AB_PID=
    fi
}
stop_stack() {
    stop_ab
    if [[ -n $NGINX_PID ]]; then
        kill -QUIT "$NGINX_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$NGINX_PID" 2>/dev/null || true
        wait "$NGINX_PID" 2>/dev/null || true
        NGINX_PID=
    fi
    if [[ -n $EMPEROR_PID ]]; then
        # SIGINT: the Emperor stops every vassal, then exits (a few seconds)
        kill -INT "$EMPEROR_PID" 2>/dev/null || true
        for _ in $(seq 1 150); do kill -0 "$EMPEROR_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$EMPEROR_PID" 2>/dev/null || true
        wait "$EMPEROR_PID" 2>/dev/null || true
        EMPEROR_PID=
    fi
}
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    [[ -n $SAMPLER_PID ]] && kill -TERM "$SAMPLER_PID" 2>/dev/null
    stop_stack
    if [[ ${KEEP_DIR:-0} == 1 ]]; then
        log "kept $ROOT"
    else
        rm -rf "$ROOT"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# a free port on the loopback interface
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

# ---- the helper: stats polling, the hand-timed floor, the analysis ----
LIB=$ROOT/benchlib.py
cat >"$LIB" <<'PY'
import json, math, os, re, socket, statistics, sys, time

def read_stats(path, timeout=5.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    finally:
        s.close()
    raw = b"".join(chunks).decode()
    try:
        return json.loads(raw)
    except ValueError:
        return json.loads(re.sub(r",\s*]", "]", raw))  # docs/UWSGI.md §13.6

def snapshot(d):
    """(emperor vassals by stem, fastrouter nodes by stem), or None on a failed read."""
    try:
        emp = read_stats(os.path.join(d, "emperor-stats.sock"))
        fr = read_stats(os.path.join(d, "fastrouter-stats.sock"))
    except (OSError, ValueError):
        return None
    vassals = {v["id"][:-4] if v["id"].endswith(".ini") else v["id"]: v for v in emp.get("vassals", [])}
    nodes = {}
    for sub in fr.get("subscriptions", []):
        for n in sub.get("nodes", []):
            stem = os.path.basename(n["name"])
            stem = stem[:-5] if stem.endswith(".sock") else stem
            nodes[stem] = n
    return vassals, nodes

def write_s(d, name):
    """docs/UWSGI.md §9.6: unblock subscriptions of a vassal whose accepting hook missed its FIFO."""
    try:
        fd = os.open(os.path.join(d, name + ".fifo"), os.O_WRONLY | os.O_NONBLOCK)
    except OSError as e:
        print("  %s: cannot open its FIFO: %s" % (name, e), file=sys.stderr)
        return
    try:
        os.write(fd, b"S")
    finally:
        os.close(fd)

def subscriptions_unblocked(d, name):
    """From the vassal log: did the current generation re-enable its subscriptions?"""
    state = False
    try:
        with open(os.path.join(d, "logs", name + ".log"), errors="replace") as f:
            for line in f:
                if "*** Starting uWSGI" in line or "subscriptions blocked" in line:
                    state = False
                elif "subscriptions re-enabled" in line:
                    state = True
    except OSError:
        pass
    return state

def live(vassals, nodes, name):
    v, n = vassals.get(name), nodes.get(name)
    return bool(v and v["accepting"] == 1 and not v["cursed"] and n and n["death_mark"] == 0)

def cmd_wait(d, n, timeout):
    names = ["app_%02d" % i for i in range(1, n + 1)]
    deadline = time.monotonic() + timeout
    since = {}
    while True:
        snap = snapshot(d)
        if snap:
            vassals, nodes = snap
            missing = [x for x in names if not live(vassals, nodes, x)]
            if not missing:
                return 0
            now = time.monotonic()
            for x in missing:
                v, node = vassals.get(x), nodes.get(x)
                if v and v["accepting"] == 1 and (node is None or node["death_mark"]):
                    since.setdefault(x, now)
                    if now - since[x] >= 4 and not subscriptions_unblocked(d, x):
                        print("[bench] %s accepts but never subscribed (docs/UWSGI.md §9.6): writing S to its FIFO" % x,
                              file=sys.stderr)
                        write_s(d, x)
                        since[x] = now + 12  # the next announce can take subscribe-freq (10 s)
                else:
                    since.pop(x, None)
        if time.monotonic() > deadline:
            print("[bench] timed out waiting for: %s" % " ".join(missing if snap else names), file=sys.stderr)
            return 1
        time.sleep(0.2)

def cmd_solo(d, name):
    """Touch one vassal by hand, poll both stats sockets as fast as possible until it
    accepts again and its node is back. Prints one JSON line."""
    snap = snapshot(d)
    v0 = snap[0][name]
    link = os.path.join(d, "vassals", name + ".ini")
    mtime = max(int(time.time()), v0["last_mod"] + 1)
    t0 = time.monotonic()
    os.utime(link, (mtime, mtime), follow_symlinks=False)
    seen = unsub = acc = None
    prev = t0
    polls = 0
    repaired = False
    while True:
        snap = snapshot(d)
        now = time.monotonic()
        polls += 1
        if snap:
            vassals, nodes = snap
            v, n = vassals.get(name), nodes.get(name)
            if seen is None and v and v["last_mod"] != v0["last_mod"]:
                seen = now
            if seen is not None and unsub is None and (n is None or n["death_mark"]):
                unsub = now
            if seen is not None and acc is None and v and v["accepting"] == 1:
                acc = now
            if acc is not None and unsub is not None and n is not None and n["death_mark"] == 0:
                break
            if acc is not None and not repaired and now - acc > 5 and not subscriptions_unblocked(d, name):
                write_s(d, name)
                repaired = True
        if now - t0 > 90:
            print(json.dumps({"name": name, "timeout": True}))
            return 1
        prev = now
        time.sleep(0.002)
    ms = lambda t: round((t - t0) * 1000, 1) if t is not None else None
    print(json.dumps({"name": name, "ms": ms(now), "lo_ms": ms(prev), "seen_ms": ms(seen),
                      "unsub_ms": ms(unsub), "accepting_ms": ms(acc), "polls": polls,
                      "repaired": repaired}))
    return 0

def cmd_sample(d, n, out):
    """Until SIGTERM: read the fastrouter every 20 ms; per vassal, the time its
    node was out of rotation (missing or death-marked). Writes {stem: ms}."""
    import signal
    names = ["app_%02d" % i for i in range(1, n + 1)]
    out_ms = {x: 0.0 for x in names}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    prev = time.monotonic()
    while not stop:
        try:
            fr = read_stats(os.path.join(d, "fastrouter-stats.sock"), 1.0)
        except (OSError, ValueError):
            fr = None
        now = time.monotonic()
        if fr is not None:
            live = set()
            for sub in fr.get("subscriptions", []):
                for node in sub.get("nodes", []):
                    stem = os.path.basename(node["name"])
                    stem = stem[:-5] if stem.endswith(".sock") else stem
                    if node["death_mark"] == 0:
                        live.add(stem)
            for x in names:
                if x not in live:
                    out_ms[x] += (now - prev) * 1000
        prev = now
        time.sleep(0.02)
    with open(out, "w") as f:
        json.dump(out_ms, f)
    return 0

def cmd_run(a, cmd):
    """Run cmd under /usr/bin/time; sample the tool's /proc/PID/schedstat (CPU time,
    time spent runnable but waiting for a CPU, switches) every 20 ms. Exit: the tool's."""
    import subprocess
    with open(a["events"], "w") as out, open(a["stderr"], "w") as err:
        p = subprocess.Popen(["/usr/bin/time", "-f", "%e %U %S %M", "-o", a["time"]] + cmd,
                             stdout=out, stderr=err)
        child, last = None, None
        while p.poll() is None:
            if child is None:
                try:
                    kids = open("/proc/%d/task/%d/children" % (p.pid, p.pid)).read().split()
                    child = int(kids[0]) if kids else None
                except (OSError, ValueError):
                    pass
            if child is not None:
                try:
                    last = [int(x) for x in open("/proc/%d/schedstat" % child).read().split()]
                except (OSError, ValueError):
                    pass
            time.sleep(0.02)
    with open(a["sched"], "w") as f:
        json.dump({"run_ms": last[0] / 1e6, "wait_ms": last[1] / 1e6, "switches": last[2]} if last else {}, f)
    return p.returncode

def ab_field(text, key):
    m = re.search(r"^%s:\s*(\d+)" % re.escape(key), text, re.M)
    return int(m.group(1)) if m else 0

def cmd_analyze(a):
    events = []
    with open(a["events"]) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    events.append(json.loads(line))
                except ValueError:
                    pass
    summary = next((e for e in events if e.get("event") == "summary"), {})
    wall, user, sys_, rss = open(a["time"]).read().split()[-4:]
    wall, user, sys_, rss = float(wall), float(user), float(sys_), int(rss)
    abtxt = open(a["ab"], errors="replace").read()
    try:
        sched = json.load(open(a["sched"]))
    except (OSError, ValueError, KeyError):
        sched = {}
    n, k = int(a["n"]), int(a["k"])
    try:
        out_ms = sorted(json.load(open(a["sample"])).values())
    except (OSError, ValueError):
        out_ms = []
    text = open(a["events"], errors="replace").read()
    waves = math.ceil(n / max(1, n - k))
    floor = float(a["solo_ms"]) / 1000 * waves
    per = {}  # vassal -> {event: first at_ms}
    order = []
    for e in events:
        v = e.get("vassal")
        if not isinstance(v, str) or "at_ms" not in e:
            continue
        d = per.setdefault(v, {})
        d.setdefault(e["event"], e["at_ms"])
    def ph(v, a_, b_):
        d = per[v]
        return d[b_] - d[a_] if a_ in d and b_ in d else None
    reload_ms = [x for x in (ph(v, "touched", "subscribed") for v in per) if x is not None]
    seen_ms = [x for x in (ph(v, "touched", "reload_seen") for v in per) if x is not None]
    drain_ms = [x for x in (ph(v, "drain_started", "drained") for v in per) if x is not None]
    drained_touch = [x for x in (ph(v, "drained", "touched") for v in per) if x is not None]
    to_acc = [x for x in (ph(v, "reload_seen", "accepting") for v in per) if x is not None]
    acc_sub = [x for x in (ph(v, "accepting", "subscribed") for v in per) if x is not None]
    starts = sorted((min(d[x] for x in ("drain_started", "touched") if x in d), v)
                    for v, d in per.items() if "touched" in d or "drain_started" in d)
    subs = sorted(d["subscribed"] for d in per.values() if "subscribed" in d)
    gaps = []
    for t, v in starts:
        before = [s for s in subs if s <= t]
        if before:
            gaps.append(t - before[-1])
    first_start = starts[0][0] if starts else None
    last_sub = subs[-1] if subs else None
    floor_json = (min(reload_ms) / 1000 * waves) if reload_ms else None
    # The critical path: from the last vassal to subscribe, back through the
    # `subscribed` that let it start, to the first wave. Its segments are the
    # tool's (lead, drains, drained -> touched, gaps, tail) or uWSGI's
    # (touched -> subscribed, which includes the tool's detection delay of up
    # to one check interval).
    start_of = lambda v: min(per[v][x] for x in ("drain_started", "touched") if x in per[v])
    done = {v: d["subscribed"] for v, d in per.items() if "subscribed" in d and ("touched" in d or "drain_started" in d)}
    chain = []
    v = max(done, key=lambda x: done[x]) if done else None
    while v is not None and v not in chain:
        chain.append(v)
        s0 = start_of(v)
        enablers = [(t, x) for x, t in done.items() if x != v and t <= s0 and x not in chain]
        v = max(enablers)[1] if enablers else None
    chain.reverse()
    path, crit = [], {"lead": 0, "drain": 0, "touch": 0, "reload": 0, "gap": 0, "tail": 0}
    for i, v in enumerate(chain):
        d = per[v]
        if i == 0:
            crit["lead"] = start_of(v)
        else:
            g = start_of(v) - done[chain[i - 1]]
            crit["gap"] += g
            path.append("gap %d" % g)
        dr = d["drained"] - d["drain_started"] if "drained" in d and "drain_started" in d else 0
        tt = d["touched"] - d.get("drained", d["touched"]) if "touched" in d else 0
        rl = d["subscribed"] - d["touched"] if "touched" in d else 0
        crit["drain"] += dr
        crit["touch"] += tt
        crit["reload"] += rl
        path.append("%s [drain %d, drained->touched %d, touched->subscribed %d]" % (v, dr, tt, rl))
    if chain and summary.get("elapsed_ms") is not None:
        crit["tail"] = summary["elapsed_ms"] - done[chain[-1]]
    crit_tool = crit["lead"] + crit["drain"] + crit["touch"] + crit["gap"] + crit["tail"]
    row = {
        "n": n, "k": k, "run": a["run"], "mode": a["mode"], "wall": wall,
        "app_start": float(a["app_start"]), "lazy": a["lazy"] == "1",
        "out_med_ms": statistics.median(out_ms) if out_ms else None,
        "out_max_ms": max(out_ms) if out_ms else None,
        "solo_accept_ms": float(a["solo_accept_ms"]),
        "floor": floor, "ratio": wall / floor if floor else None,
        "floor_json": floor_json,
        "cpu": user + sys_, "cpu_pct": 100 * (user + sys_) / wall if wall else None, "rss_kb": rss,
        "stats_reads": summary.get("stats_reads"),
        "requests": ab_field(abtxt, "Complete requests"), "failed": ab_field(abtxt, "Failed requests"),
        "non2xx": ab_field(abtxt, "Non-2xx responses"),
        "exit": summary.get("exit_code", int(a.get("rc", 0))),
        "reloaded": len(summary["reloaded"]) if isinstance(summary.get("reloaded"), list)
        else len(re.findall(r": reloaded$", text, re.M)),
        "elapsed_ms": summary.get("elapsed_ms"),
        "first_start_ms": first_start, "last_subscribed_ms": last_sub,
        "gap_ms": gaps, "seen_ms": seen_ms, "reload_ms": reload_ms, "drain_ms": drain_ms,
        "drained_touch_ms": drained_touch, "seen_acc_ms": to_acc, "acc_sub_ms": acc_sub,
        "waves": waves, "solo_ms": float(a["solo_ms"]),
        "canary": any(e.get("event") == "canary_passed" for e in events),
        "crit": crit, "crit_tool_ms": crit_tool, "crit_path": path,
        "rq_wait_ms": sched.get("wait_ms"), "sched_run_ms": sched.get("run_ms"),
    }
    with open(a["out"], "a") as f:
        f.write(json.dumps(row) + "\n")
    st = lambda xs: ("%d..%d (median %d)" % (min(xs), max(xs), statistics.median(xs))) if xs else "-"
    print("  N=%d K=%d run %s %s: wall %.2f s, floor %.2f s (%d waves x %.0f ms), wall/floor %.2f; "
          "out of rotation per vassal median %s max %s ms; reloaded %s; "
          "tool cpu %.2f s (%.2f%%), rss %d KiB, stats reads %s; requests %d, failed %d, non-2xx %d; exit %s"
          % (n, k, a["run"], a["mode"], wall, floor, waves, float(a["solo_ms"]), row["ratio"] or 0,
             "%.0f" % row["out_med_ms"] if out_ms else "-", "%.0f" % row["out_max_ms"] if out_ms else "-",
             row["reloaded"], row["cpu"], row["cpu_pct"] or 0, rss, row["stats_reads"], row["requests"],
             row["failed"], row["non2xx"], row["exit"]))
    if not per:
        return 0
    print("    start -> first drain/touch %s ms; last subscribed %s ms; summary at %s ms; "
          "the tool ran %s ms on a CPU and waited %s ms for one (runnable, /proc/PID/schedstat)"
          % (first_start, last_sub, summary.get("elapsed_ms"),
             "%.1f" % sched["run_ms"] if sched else "?", "%.0f" % sched["wait_ms"] if sched else "?"))
    print("    per vassal: drain %s | drained->touched %s | touched->reload_seen %s | reload_seen->accepting %s"
          " | accepting->subscribed %s | touched->subscribed %s"
          % (st(drain_ms), st(drained_touch), st(seen_ms), st(to_acc), st(acc_sub), st(reload_ms)))
    print("    tool's share: subscribed -> next start %s ms; touched -> reload_seen max %s ms (check interval 100)"
          % (gaps, max(seen_ms) if seen_ms else "-"))
    print("    critical path (ms): lead %d -> %s -> tail %d" % (crit["lead"], " -> ".join(path), crit["tail"]))
    print("    on it: tool %d ms (lead %d, drains %d, drained->touched %d, gaps %d, tail %d); "
          "uWSGI as observed %d ms (floor %d ms; the difference is detection at %s-ms ticks and CPU contention)"
          % (crit_tool, crit["lead"], crit["drain"], crit["touch"], crit["gap"], crit["tail"], crit["reload"],
             floor * 1000, a.get("interval_ms", "100")))
    return 0

def cmd_table(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    h = ("N", "K", "start", "lazy", "run", "mode", "wall s", "floor s", "accept ms", "out med ms",
         "out max ms", "cpu s", "rss KiB", "reads", "requests", "failed", "non-2xx", "reloaded", "exit")
    fmt = "%3s %3s %5s %4s %3s %6s %7s %7s %9s %10s %10s %6s %7s %6s %8s %6s %7s %8s %4s"
    print(fmt % h)
    f2 = lambda x, p=2: ("%.*f" % (p, x)) if isinstance(x, (int, float)) else "-"
    for r in rows:
        print(fmt % (r["n"], r["k"], f2(r["app_start"], 1), "yes" if r["lazy"] else "no", r["run"], r["mode"],
                     f2(r["wall"]), f2(r["floor"]), f2(r["solo_accept_ms"], 0), f2(r["out_med_ms"], 0),
                     f2(r["out_max_ms"], 0), f2(r["cpu"]), r["rss_kb"],
                     r["stats_reads"] if r["stats_reads"] is not None else "-",
                     r["requests"], r["failed"], r["non2xx"], r["reloaded"], r["exit"]))
    # Side by side: the median of each mode per setup, and its ratio to orig.
    print()
    print("median per setup (wall s; ratio to orig where it ran; failed requests summed):")
    setups = {}
    for r in rows:
        setups.setdefault((r["n"], r["k"], r["app_start"], r["lazy"]), {}).setdefault(r["mode"], []).append(r)
    for (n, k, st_, lz), modes in setups.items():
        base = statistics.median(x["wall"] for x in modes["orig"]) if "orig" in modes else None
        cells = []
        for m, rs in modes.items():
            w = statistics.median(x["wall"] for x in rs)
            cpu = statistics.median(x["cpu"] for x in rs)
            cells.append("%s %.2f s%s (%d runs, cpu %.2f s, failed %d)" % (
                m, w, " = %.2f x orig" % (w / base) if base and m != "orig" else "", len(rs), cpu,
                sum(x["failed"] + x["non2xx"] for x in rs)))
        print("  N=%d K=%d start %.1f s lazy %s: %s" % (n, k, st_, "yes" if lz else "no", "; ".join(cells)))
    bad = [r for r in rows if r["failed"] or r["non2xx"] or r["exit"] != 0]
    return 1 if bad else 0

if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "wait":
        sys.exit(cmd_wait(sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
    if cmd == "solo":
        sys.exit(cmd_solo(sys.argv[2], sys.argv[3]))
    if cmd == "sample":
        sys.exit(cmd_sample(sys.argv[2], int(sys.argv[3]), sys.argv[4]))
    if cmd == "run":
        i = sys.argv.index("--")
        sys.exit(cmd_run(dict(x.split("=", 1) for x in sys.argv[2:i]), sys.argv[i + 1:]))
    if cmd == "analyze":
        sys.exit(cmd_analyze(dict(x.split("=", 1) for x in sys.argv[2:])))
    if cmd == "table":
        sys.exit(cmd_table(sys.argv[2]))
    sys.exit("unknown command " + cmd)
PY

start_ab() { # $1: output file
    set -m
    ab -l -r -c "$CONCURRENCY" -t 3600 -n 100000000 "http://127.0.0.1:$PORT$REQUEST_PATH" >"$1" 2>&1 &
    AB_PID=$!
    set +m
}

start_stack() { # $1: N
    local n=$1 f name
    DIR=$ROOT/n$n
    PORT=$(free_port)
    mkdir -p "$DIR/vassals" "$DIR/logs" "$DIR/state" "$DIR/nginx-temp" "$DIR/runs"
    for f in emperor.ini vassal.ini app.py nginx.conf; do
        sed -e "s|@STACK_DIR@|$DIR|g" -e "s|@KEY@|$KEY|g" -e "s|@PORT@|$PORT|g" \
            -e "s|@USER@|$(id -un)|g" "$STACK_SRC/$f" >"$DIR/$f"
    done
    if [[ $LAZY == 1 ]]; then
        echo "lazy-apps = true" >>"$DIR/vassal.ini"
    fi
    for i in $(seq 1 "$n"); do
        name=$(printf 'app_%02d' "$i")
        ln -s ../vassal.ini "$DIR/vassals/$name.ini"
    done
    set -m # own process groups, so stop_stack can kill them whole
    APP_IMPORT_DELAY=$APP_START uwsgi --ini "$DIR/emperor.ini" >"$DIR/logs/emperor.out" 2>&1 &
    EMPEROR_PID=$!
    nginx -p "$DIR" -c "$DIR/nginx.conf" -e "$DIR/logs/nginx-error.log" >"$DIR/logs/nginx.out" 2>&1 &
    NGINX_PID=$!
    set +m
    log "N=$n: stack in $DIR (emperor $EMPEROR_PID, nginx $NGINX_PID on 127.0.0.1:$PORT)"
    python3 "$LIB" wait "$DIR" "$n" 180
}

# ---- the machine ----
MACHINE="$(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, $(uname -sr)"
log "machine: $MACHINE"
log "uwsgi $(uwsgi --version), $(nginx -v 2>&1 | sed 's/^nginx version: //'), $("$BIN" --version)"
log "NS='$NS' RUNS=$RUNS KS='$KS' MODES='$MODES' APP_START=$APP_START LAZY=$LAZY SOLO=$SOLO ab -c $CONCURRENCY $REQUEST_PATH${ORIG:+ ORIG=$ORIG}"
: >"$RESULTS"
OVERALL_START=$SECONDS

for N in $NS; do
    if ((N <= K)); then
        log "N=$N: skipped (needs N > K=$K)"
        continue
    fi
    start_stack "$N"
    log "N=$N: all vassals accept and are subscribed"

    # ---- the floor: single reloads timed by hand, under load ----
    start_ab "$DIR/runs/ab-solo.out"
    sleep 1
    solo=()
    solo_acc=()
    for i in $(seq 1 "$SOLO"); do
        name=$(printf 'app_%02d' $(((i - 1) % N + 1)))
        line=$(python3 "$LIB" solo "$DIR" "$name")
        log "N=$N: by hand: $line"
        ms=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d.get("ms") or "")' "$line")
        [[ -n $ms ]] && solo+=("$ms")
        acc=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d.get("accepting_ms") or "")' "$line")
        [[ -n $acc ]] && solo_acc+=("$acc")
        python3 "$LIB" wait "$DIR" "$N" 60
        sleep 0.5
    done
    stop_ab
    ((${#solo[@]})) || { log "N=$N: no single reload could be timed"; exit 1; }
    SOLO_MS=$(printf '%s\n' "${solo[@]}" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
    median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
    SOLO_ACC_MS=$(median "${solo_acc[@]:-0}")
    log "N=$N: T_solo = median of ${solo[*]} ms = $SOLO_MS ms; touch -> accepting median $SOLO_ACC_MS ms"

    # ---- the rollouts: every K, every mode in turn, RUNS times ----
    for kk in $KS; do
        [[ $kk == half ]] && kk=$((N / 2))
        ((N > kk)) || { log "N=$N: K=$kk skipped (needs N > K)"; continue; }
        for run in $(seq 1 "$RUNS"); do
            for mode in $MODES; do
                tag=k$kk-r$run-$mode
                python3 "$LIB" wait "$DIR" "$N" 60
                sleep 1
                start_ab "$DIR/runs/ab-$tag.out"
                sleep 1
                SOCKS=(--emperor-path "$DIR/vassals"
                    --fastrouter-stats-socket "$DIR/fastrouter-stats.sock"
                    --emperor-stats-socket "$DIR/emperor-stats.sock"
                    --minimum-active-vassals "$kk")
                case $mode in
                    orig) CMD=(python3 "$ORIG" "${SOCKS[@]}") ;;
                    # shellcheck disable=SC2206 # TOOL_PREFIX is split on purpose
                    plain) CMD=($TOOL_PREFIX "$BIN" "${SOCKS[@]}" --json --no-early-announce) ;;
                    # shellcheck disable=SC2206
                    early) CMD=($TOOL_PREFIX "$BIN" "${SOCKS[@]}" --json --early-announce) ;;
                    # shellcheck disable=SC2206
                    nodrain) CMD=($TOOL_PREFIX "$BIN" "${SOCKS[@]}" --json --no-drain) ;;
                    # shellcheck disable=SC2206
                    default) CMD=($TOOL_PREFIX "$BIN" "${SOCKS[@]}" --json) ;;
                    *) log "unknown mode $mode (plain, early, default, nodrain, orig)"; exit 2 ;;
                esac
                python3 "$LIB" sample "$DIR" "$N" "$DIR/runs/out-$tag.json" &
                SAMPLER_PID=$!
                rc=0
                # /usr/bin/time -f '%e %U %S %M' CMD (children included), its run-queue wait sampled
                python3 "$LIB" run time="$DIR/runs/time-$tag" events="$DIR/runs/events-$tag.jsonl" \
                    stderr="$DIR/runs/stderr-$tag" sched="$DIR/runs/sched-$tag.json" -- "${CMD[@]}" || rc=$?
                sleep 1
                kill -TERM "$SAMPLER_PID" 2>/dev/null || true
                wait "$SAMPLER_PID" 2>/dev/null || true
                stop_ab
                python3 "$LIB" analyze events="$DIR/runs/events-$tag.jsonl" time="$DIR/runs/time-$tag" \
                    ab="$DIR/runs/ab-$tag.out" sched="$DIR/runs/sched-$tag.json" n="$N" k="$kk" run="$run" \
                    mode="$mode" rc="$rc" solo_ms="$SOLO_MS" solo_accept_ms="$SOLO_ACC_MS" \
                    sample="$DIR/runs/out-$tag.json" app_start="$APP_START" lazy="$LAZY" out="$RESULTS"
                if ((rc != 0)); then
                    log "N=$N K=$kk run $run $mode: exited $rc; its stderr:"
                    tail -n 20 "$DIR/runs/stderr-$tag" >&2
                fi
            done
        done
    done
    stop_stack
done

echo
echo "machine: $MACHINE"
echo "command: NS='$NS' RUNS=$RUNS KS='$KS' MODES='$MODES' APP_START=$APP_START LAZY=$LAZY SOLO=$SOLO TOOL_PREFIX='$TOOL_PREFIX'${ORIG:+ ORIG=$ORIG} bash examples/bench.sh" \
    "(ab -l -r -c $CONCURRENCY $REQUEST_PATH; $((SECONDS - OVERALL_START)) s)"
echo "floor = T_solo x ceil(N / (N - K)); T_solo = median single reload (touch -> accepting and node back)" \
    "timed by hand on the same stack under the same load; floor(json) = same with the fastest" \
    "touched -> subscribed of the run; gap = subscribed -> start of the vassal it lets go"
python3 "$LIB" table "$RESULTS"
