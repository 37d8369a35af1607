"""A tiny WSGI app for the example stack and the end-to-end tests.

Environment (set per vassal with `env = ...` in its ini, or inherited from the
Emperor):
  APPNAME           the vassal name (vassal.ini sets it to %n)
  APP_IMPORT_DELAY  seconds to sleep at import: a slow-starting app (default 0);
                    the file $APP_STATE_DIR/$APPNAME.import_delay, if present,
                    overrides it for that vassal (read at every start, so a
                    test can slow down one vassal's next start only)
  APP_FAIL_IMPORT   if set and not "0", the import raises: with need-app the
                    vassal cannot start (a broken deployment)
  APP_STATE_DIR     if set, one line per event is appended to
                    $APP_STATE_DIR/$APPNAME.log:
                      import pid=<master pid> time=<unix time>
                      worker pid=<worker pid> master=<master pid> time=<unix time>
                    so a test can prove that every vassal really reloaded

Request:  GET /?sleep=S   sleeps S seconds before answering (default 0)
Response: 200, one line
  app=<APPNAME> worker=<worker pid> master=<master pid> imported=<import time>
(padded to a fixed width)
"""
import os
import time

NAME = os.environ.get("APPNAME", "?")
STATE_DIR = os.environ.get("APP_STATE_DIR", "")


def _record(line):
    if not STATE_DIR:
        return
    with open(os.path.join(STATE_DIR, NAME + ".log"), "a") as f:
        f.write(line + "\n")


if os.environ.get("APP_FAIL_IMPORT", "0") not in ("", "0"):
    raise RuntimeError("APP_FAIL_IMPORT is set: refusing to start")

def _import_delay():
    delay = os.environ.get("APP_IMPORT_DELAY", "0")
    if STATE_DIR:
        try:
            with open(os.path.join(STATE_DIR, NAME + ".import_delay")) as f:
                delay = f.read().strip()
        except OSError:
            pass
    try:
        return max(0.0, float(delay or 0))
    except ValueError:
        return 0.0


time.sleep(_import_delay())

# uWSGI imports the app in the master and then forks the worker(s): this pid is
# the master's, which a graceful reload keeps (it re-execs itself).
MASTER_PID = os.getpid()
IMPORTED = time.time()
_record("import pid=%d time=%.6f" % (MASTER_PID, IMPORTED))

try:
    import uwsgi

    def _post_fork():
        _record("worker pid=%d master=%d time=%.6f" % (os.getpid(), os.getppid(), time.time()))

    uwsgi.post_fork_hook = _post_fork
except ImportError:  # not running under uWSGI
    pass


def _sleep_seconds(query):
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == "sleep":
            try:
                return max(0.0, float(value))
            except ValueError:
                return 0.0
    return 0.0


def application(environ, start_response):
    delay = _sleep_seconds(environ.get("QUERY_STRING", ""))
    if delay:
        time.sleep(delay)
    # fixed width (for names up to 16 characters), so that `ab` sees one length
    body = "app=%-16s worker=%7d master=%7d imported=%.6f\n" % (NAME, os.getpid(), MASTER_PID, IMPORTED)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body.encode()]
