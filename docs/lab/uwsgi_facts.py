#!/usr/bin/env python3
"""Re-checks a few facts of docs/UWSGI.md on the real uWSGI installed here.

Run from the repository root, alone on the machine's real-stack lock:

    flock /tmp/uwsgi-reload-realstack.lock python3 docs/lab/uwsgi_facts.py

It builds the example stack of examples/stack/ (Emperor with an embedded
fastrouter, --emperor-nofollow, two vassals linked to one vassal.ini) in
/tmp/uwsgi-facts-lab, then checks, printing what it saw:
  §1.3  by the second Emperor read after a touch at the latest, the reload
        request shows (the first may still show the old record);
  §4    that request sets last_mod, respawns + 1, ready = 0, accepting = 0 at once;
  §5.1, §6.1  the reloaded vassal keeps its pid, accepts again, ready stays 0;
  §10.2 with unsubscribe-on-graceful-reload its idle node is gone at once;
  §2    an mtime equal to last_mod, or in the past, reloads nothing;
  §3    with --emperor-nofollow, touching the links' target reloads nothing;
  §9.4, §14  after FIFO `S` and with no traffic, the node stays listed with
        death_mark 0 past subscription-tolerance (17 s).
Takes about 40 s. Exit 0 when every check held, 1 otherwise.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time

SRC = "examples/stack"
D = "/tmp/uwsgi-facts-lab"
failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


def read(sock):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    s.connect(f"{D}/{sock}")
    buf = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    return json.loads(buf)


def record(name):
    return next((v for v in read("emperor-stats.sock")["vassals"] if v["id"] == name), None)


def nodes():
    out = {}
    for key in read("fastrouter-stats.sock")["subscriptions"]:
        for n in key["nodes"]:
            out[os.path.basename(n["name"])] = n
    return out


def wait(cond, limit):
    t = time.time()
    while time.time() - t < limit:
        try:
            if cond():
                return True
        except (OSError, ValueError, TypeError, KeyError):
            pass
        time.sleep(0.05)
    return False


def build():
    shutil.rmtree(D, ignore_errors=True)
    for sub in ("vassals", "logs", "state"):
        os.makedirs(f"{D}/{sub}")
    for f in ("emperor.ini", "vassal.ini", "app.py"):
        text = open(f"{SRC}/{f}").read()
        text = text.replace("@STACK_DIR@", D).replace("@KEY@", "example.com")
        open(f"{D}/{f}", "w").write(text)
    for n in ("app_01", "app_02"):
        os.symlink(f"{D}/vassal.ini", f"{D}/vassals/{n}.ini")


def main():
    build()
    emperor = subprocess.Popen(["uwsgi", "--ini", f"{D}/emperor.ini"])
    try:
        up = wait(lambda: all(record(n)["accepting"] == 1 for n in ("app_01.ini", "app_02.ini"))
                  and len(nodes()) == 2, 30)
        if not up:
            print("FAIL  the stack did not come up (see /tmp/uwsgi-facts-lab/logs)")
            return 1
        time.sleep(1.5)
        link = f"{D}/vassals/app_01.ini"
        before = record("app_01.ini")
        m = max(int(time.time()), before["last_mod"] + 1)
        os.utime(link, (m, m), follow_symlinks=False)
        first, second = record("app_01.ini"), record("app_01.ini")
        old = first["last_mod"] == before["last_mod"]
        check(second["last_mod"] == m,
              f"§1.3 the second read after the touch shows the request "
              f"(the first showed the {'old record' if old else 'request already'})")
        check(second["last_mod"] == m and second["respawns"] == before["respawns"] + 1
              and second["ready"] == 0 and second["accepting"] == 0,
              f"§4 second read: last_mod {second['last_mod']}, respawns {second['respawns']}, "
              f"ready {second['ready']}, accepting {second['accepting']}")
        check("app_01.sock" not in nodes(), "§10.2 the idle node is gone at the start of the reload")
        t = time.time()
        back = wait(lambda: record("app_01.ini")["accepting"] == 1, 20)
        after = record("app_01.ini")
        check(back and after["pid"] == before["pid"] and after["ready"] == 0,
              f"§5.1 §6.1 accepting again after {time.time() - t:.2f} s, same pid {after['pid']}, ready {after['ready']}")
        wait(lambda: nodes()["app_01.sock"]["last_check"] >= m, 25)
        time.sleep(1.2)
        cur = record("app_01.ini")
        os.utime(link, (cur["last_mod"],) * 2, follow_symlinks=False)
        record("app_01.ini")
        same = record("app_01.ini")
        os.utime(link, (cur["last_mod"] - 3600,) * 2, follow_symlinks=False)
        record("app_01.ini")
        past = record("app_01.ini")
        check(same["respawns"] == cur["respawns"], "§2 an mtime equal to last_mod reloads nothing")
        check(past["respawns"] == cur["respawns"] and past["last_mod"] == cur["last_mod"],
              "§2 an mtime in the past reloads nothing and leaves last_mod")
        r1, r2 = record("app_01.ini")["respawns"], record("app_02.ini")["respawns"]
        os.utime(f"{D}/vassal.ini", None)
        record("app_02.ini")
        check(record("app_01.ini")["respawns"] == r1 and record("app_02.ini")["respawns"] == r2,
              "§3 with --emperor-nofollow, touching the target reloads nothing")
        with open(f"{D}/app_02.fifo", "w") as f:
            f.write("S")
        time.sleep(22)
        n = nodes().get("app_02.sock")
        age = n and int(time.time()) - n["last_check"]
        check(n is not None and n["death_mark"] == 0 and age > 17,
              f"§9.4 §14 22 s after S, no traffic: node listed, age {age} s, "
              f"death_mark {n and n['death_mark']}")
    finally:
        emperor.terminate()
        try:
            emperor.wait(15)
        except subprocess.TimeoutExpired:
            emperor.kill()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
