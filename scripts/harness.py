"""What the fault scripts share: HTTP calls, a server process, a fresh database with a site and
its users, stubs of an SMS gateway and of push services, latency figures, and how a run ends
(`run`: PASS or FAIL last, also when the run itself breaks). Standard library only, plus psql for
PostgreSQL. The scripts put their own folder on sys.path and import this module.
"""
import base64
import hashlib
import hmac
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
from collections import Counter, namedtuple
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# One HTTP exchange. status is None when no answer came; body is then the error's text.
Reply = namedtuple("Reply", "status content_type body seconds")


class Broken(Exception):
    """The run could not go on (no binary, a server that does not start, an answer not as
    expected): reported as a problem and FAIL, not as a traceback."""


def default_binary():
    """The debug build `cargo build` makes, in $CARGO_TARGET_DIR when set."""
    return os.path.join(os.environ.get("CARGO_TARGET_DIR") or "target", "debug", "repairdesk")


def npm_installed(test_dir, package, test):
    """Installs the npm packages of the test in test_dir (`npm ci`) unless package is there."""
    if os.path.isdir(os.path.join(test_dir, "node_modules", package)):
        return
    print(f"installing the test's npm packages (npm ci in {os.path.relpath(test_dir)})")
    try:
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=test_dir, check=True)
    except FileNotFoundError:
        raise Broken(f"npm is not installed: the {test} needs Node 20 and npm") from None


def free_port():
    """A port nothing listens on now, so runs beside other servers (or another run) never meet."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def where(e):
    """`file:line in function` of the innermost frame of exception `e`."""
    frames = traceback.extract_tb(e.__traceback__)
    if not frames:
        return "?"
    f = frames[-1]
    return f"{os.path.basename(f.filename)}:{f.lineno} in {f.name}"


def broke(e):
    """One line saying why and where the run broke."""
    if isinstance(e, Broken):
        return str(e)
    if isinstance(e, subprocess.CalledProcessError):
        err = (e.stderr or "").strip() if isinstance(e.stderr, str) else ""
        return f"{' '.join(map(str, e.cmd))} exited with {e.returncode}" + (f": {err[:300]}" if err else "")
    return f"{type(e).__name__}: {str(e)[:300]} at {where(e)}"


def run(main):
    """Runs a script's `main()`, which returns its exit status, and exits with it. When the run
    itself breaks, the last lines say why and FAIL (exit status 1); FAULT_TRACEBACK=1 adds the
    traceback."""
    try:
        status = main()
    except KeyboardInterrupt:
        print("problem: interrupted")
        status = verdict(["interrupted"])
    except Exception as e:
        if os.environ.get("FAULT_TRACEBACK") == "1":
            traceback.print_exc()
        status = verdict([f"the run broke: {broke(e)}"])
    sys.stdout.flush()
    sys.exit(status)


def guarded(work, problems, lock):
    """`work` for a thread: an exception in it becomes a problem (and the thread ends), not a
    traceback from a silently dead thread."""
    def go(*args):
        try:
            work(*args)
        except Exception as e:
            with lock:
                problems.append(f"{work.__name__} broke: {broke(e)}")
    return go


def _decode(raw):
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return raw.decode(errors="replace")


def call(base, method, path, token=None, body=None, headers=None, timeout=5):
    """One request to `base` (e.g. http://127.0.0.1:18190); never raises for HTTP or network errors."""
    req = urllib.request.Request(f"{base}{path}", method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, data=data, timeout=timeout) as res:
            return Reply(res.status, res.headers.get("content-type"), _decode(res.read()), time.monotonic() - started)
    except urllib.error.HTTPError as e:
        return Reply(e.code, e.headers.get("content-type"), _decode(e.read()), time.monotonic() - started)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
        return Reply(None, None, str(e), time.monotonic() - started)


class Server:
    """One repairdesk process on 127.0.0.1:`port` (a free one when None), logging to
    `workdir`/`log_name`."""

    def __init__(self, binary, port, env, workdir, log_name="server.log"):
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            raise Broken(f"no server binary at {binary}: run `cargo build` first, or pass --binary")
        self.binary = binary
        port = port or free_port()
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.env = dict(os.environ, REPAIRDESK_ADDR=f"127.0.0.1:{port}", **env)
        self.log_path = os.path.join(workdir, log_name)
        self.proc = None

    def spawn(self):
        """Starts the process without waiting for it."""
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary], env=self.env, stdout=log, stderr=log)
        log.close()
        return self.proc

    def wait_healthy(self, attempts=100):
        for _ in range(attempts):
            # ours must still run: a 200 from whatever else listens on the port would not count
            if self.proc.poll() is not None:
                raise Broken(f"server on port {self.port} exited with {self.proc.returncode}; see {self.log_path}")
            if self.request("GET", "/healthz").status == 200 and self.proc.poll() is None:
                return self.proc
            time.sleep(0.1)
        raise Broken(f"server on port {self.port} did not answer /healthz within {attempts / 10:g} s; see {self.log_path}")

    def start(self, attempts=100):
        """Starts the process and waits until /healthz answers 200."""
        self.spawn()
        return self.wait_healthy(attempts)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        if self.proc:
            self.proc.wait()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def request(self, method, path, token=None, body=None, headers=None, timeout=5):
        return call(self.base, method, path, token, body, headers, timeout)

    def login(self, username, password):
        r = self.request("POST", "/api/v1/auth/login", body={"username": username, "password": password})
        expect(r, 200, f"login of {username}")
        return r.body["access_token"]


def expect(r, status, what):
    """`r` answered `status` with a JSON object, or the run is Broken."""
    if r.status != status or not isinstance(r.body, dict):
        raise Broken(f"{what} answered {r.status} {str(r.body)[:300]}, not {status}")
    return r.body


class Database:
    """A fresh database: a SQLite file in `workdir`, or a new PostgreSQL database on the server
    `pg` (postgres://user@host:port, no database) that drop() removes."""

    def __init__(self, engine, workdir, pg="postgres://postgres@127.0.0.1:5432", prefix="rd_fault"):
        self.engine = engine
        self.pg = pg
        self.pg_db = None
        if engine == "sqlite":
            self.path = os.path.join(workdir, "rd.db")
            self.url = f"sqlite://{self.path}"
        else:
            name = f"{prefix}_{uuid.uuid4().hex[:12]}"
            try:
                subprocess.run(["psql", f"{pg}/postgres", "-Xqc", f"CREATE DATABASE {name}"],
                               check=True, capture_output=True, text=True)
            except FileNotFoundError:
                raise Broken("psql is not installed: the PostgreSQL runs need it") from None
            except subprocess.CalledProcessError as e:
                raise Broken(f"cannot create a database on {pg}: {e.stderr.strip()[:300]}") from None
            self.pg_db = name
            self.url = f"{pg}/{self.pg_db}"

    def query(self, sql):
        """Rows of `sql` as tuples of strings (None for NULL on SQLite, '' on PostgreSQL)."""
        if self.engine == "sqlite":
            import sqlite3
            conn = sqlite3.connect(self.path, timeout=30)
            try:
                return [tuple(None if v is None else str(v) for v in row) for row in conn.execute(sql)]
            finally:
                conn.close()
        out = subprocess.run(["psql", self.url, "-XAt", "-F", "\t", "-c", sql],
                             check=True, capture_output=True, text=True).stdout
        return [tuple(line.split("\t")) for line in out.splitlines() if line]

    def drop(self):
        if self.pg_db:
            done = subprocess.run(["psql", f"{self.pg}/postgres", "-Xqc", f"DROP DATABASE IF EXISTS {self.pg_db} WITH (FORCE)"],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                print(f"note: database {self.pg_db} was not dropped: {done.stderr.strip()[:200]}")
            self.pg_db = None


def create_site(server, admin_token, code, name):
    r = server.request("POST", "/api/v1/sites", admin_token, {"code": code, "name": name, "timezone": "Asia/Shanghai"})
    return expect(r, 201, f"creating site {code}")


def create_user(server, admin_token, username, password, role, site_ids, trades=None):
    body = {"username": username, "password": password, "display_name": username, "role": role, "site_ids": site_ids}
    if trades is not None:
        body["trades"] = trades
    r = server.request("POST", "/api/v1/users", admin_token, body)
    return expect(r, 201, f"creating user {username}")


def verdict(problems):
    """Prints the first problems and PASS or FAIL last; the exit status to return."""
    for p in problems[:10]:
        print("problem:", p)
    print("PASS" if not problems else "FAIL")
    return 0 if not problems else 1


def percentiles(seconds):
    """p50, p95, p99 and max of `seconds`, in milliseconds (nearest rank)."""
    if not seconds:
        return {"n": 0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    s = sorted(seconds)

    def rank(p):
        return s[min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))] * 1000

    return {"n": len(s), "p50": rank(50), "p95": rank(95), "p99": rank(99), "max": s[-1] * 1000}


class StubServer:
    """A JSON stub on 127.0.0.1:`port` (a free one when None): each POST's body goes to
    `decide(handler, raw)`, which records what the stub makes of it and returns how to answer (a
    callable, run after the decision is counted: it may sleep, or not answer at all). HTTP/1.0:
    one request per connection, so no kept-alive connection outlives a closed listener.
    `undecided()` counts requests received whose fate is not recorded yet."""

    def __init__(self, port):
        self.port = port or free_port()
        self.lock = threading.Lock()
        self._undecided = 0
        self.httpd = None
        self.thread = None
        self._listen()

    def _listen(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args):
                pass

            def do_POST(self):
                with stub.lock:
                    stub._undecided += 1
                try:
                    raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                    respond = stub.decide(self, raw)
                finally:
                    with stub.lock:
                        stub._undecided -= 1
                respond()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def _close(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def decide(self, h, raw):
        raise NotImplementedError

    def undecided(self):
        with self.lock:
            return self._undecided

    def answering(self, h, status, body, headers=None, after_secs=0):
        """How to answer `status` with JSON `body`, `after_secs` from now."""
        def respond():
            if after_secs:
                time.sleep(after_secs)
            self.answer(h, status, body, headers)
        return respond

    @staticmethod
    def answer(h, status, body, headers=None):
        data = json.dumps(body).encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a slow answer after its timeout)

    def close(self):
        self._close()


def signed(secret, raw, header):
    """Whether `header` is our webhooks' `sha256=<hex HMAC-SHA256 of raw>` under `secret` (bytes)."""
    expected = "sha256=" + hmac.new(secret, raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header or "")


class SmsGateway(StubServer):
    """A webhook SMS gateway on 127.0.0.1:`port` (a free one when None) that checks the X-Repairdesk-Signature HMAC and
    answers according to `mode`:
      ok    2xx: the message is accepted (counted in `accepted`);
      429   429 with Retry-After;  500  500;
      slow  sleeps `slow_secs` (longer than the server's timeout), then answers 503, so an
            attempt the client gave up on never counts as accepted;
      down  the listener is closed: connections are refused.
    Every request with a good signature is counted per message id in `received`; a request with a
    bad signature is answered 401 and counted in `bad_signatures`."""

    MODES = ("ok", "down", "slow", "429", "500")

    def __init__(self, port, secret, slow_secs=2.5):
        self.secret = secret.encode()
        self.slow_secs = slow_secs
        self.mode = "ok"
        self.received = Counter()   # message id -> requests with a good signature
        self.accepted = Counter()   # message id -> 2xx answers
        self.received_in = Counter()  # mode -> requests received in it
        self.messages = {}          # message id -> the JSON of its accepted copy
        self.bad_signatures = 0
        super().__init__(port)
        self.url = f"http://127.0.0.1:{self.port}/sms"

    def set_mode(self, mode):
        assert mode in self.MODES, mode
        with self.lock:
            self.mode = mode
        if mode == "down":
            self._close()
        elif self.httpd is None:
            self._listen()

    def decide(self, h, raw):
        if not signed(self.secret, raw, h.headers.get("X-Repairdesk-Signature")):
            with self.lock:
                self.bad_signatures += 1
            return self.answering(h, 401, {"error": "bad signature"})
        message = json.loads(raw)
        with self.lock:
            mode = self.mode
            self.received[message["id"]] += 1
            self.received_in[mode] += 1
            if mode == "ok":
                self.accepted[message["id"]] += 1
                self.messages[message["id"]] = message
        if mode == "ok":
            return self.answering(h, 200, {"id": f"stub-{message['id'][:8]}", "status": "queued"})
        if mode == "slow":
            return self.answering(h, 503, {"error": "too slow"}, after_secs=self.slow_secs)
        if mode == "429":
            return self.answering(h, 429, {"error": "slow down"}, {"Retry-After": "1"})
        return self.answering(h, 500, {"error": "gateway failure"})

    def snapshot(self):
        with self.lock:
            return Counter(self.received), Counter(self.accepted), dict(self.messages)


# One copy of a push message the gateway stub accepted: our message id, which instance sent it
# (the path prefix it posted under), when (time.time()), and what it said.
Pushed = namedtuple("Pushed", "id instance at provider token kind ticket_id priority")


class PushGateway(StubServer):
    """Push services on 127.0.0.1:`port` (a free one when None), as the server's `jpush` and
    `webhook` providers reach them: JPush's REST API v3 (`POST /<instance>/v3/push`, basic auth of
    `app_key` and `master_secret`, the message id in the extras' `push_id`) and the push webhook
    (`POST /<instance>/push`, signed with `webhook_secret`, the id at the top). Each server
    instance is pointed at its own prefix (`jpush_base(instance)`, `webhook_url(instance)`), so
    the stub knows which sent what.

    Each request with good credentials gets the next answer dealt from a shuffled deck holding
    each outcome as many times as `set_weights` says (all `ok` until then; a new deck, shuffled
    again, when one runs out: random order, yet every outcome within each deck's length):
      ok     2xx: the message is delivered: a copy recorded in `accepted`;
      429    429 with Retry-After: 1;  500, 503  those;
      hang   no answer for `hang_secs` (set it past the server's timeout), then 503: never a
             delivery, as the client gave up;
      drop   the request is read and the connection closed without an answer.
    Bad credentials or a malformed message are answered 401/400 and counted in `refused`.
    `hold_next()` makes the next request with good credentials a delivery (whatever the draw,
    recorded in `held` too), sets the event it returns and keeps the connection unanswered until
    `release()`: a script kills the server then, between the service taking a message and the
    outbox recording it."""

    OUTCOMES = ("ok", "429", "500", "503", "hang", "drop")

    def __init__(self, port, app_key, master_secret, webhook_secret, hang_secs=3.5, seed=None):
        self.authorization = "Basic " + base64.b64encode(f"{app_key}:{master_secret}".encode()).decode()
        self.webhook_secret = webhook_secret.encode()
        self.hang_secs = hang_secs
        self.random = random.Random(seed)
        self.weights = {"ok": 1}
        self.deck = []
        self.accepted = []            # Pushed, in the order taken
        self.answered = Counter()     # outcome -> requests
        self.refused = []             # why a request was refused, for the report
        self.holding = None           # (caught, release) events while a hold is armed or held
        self.held = None              # the copy last held
        super().__init__(port)
        self.base = f"http://127.0.0.1:{self.port}"

    def jpush_base(self, instance):
        return f"{self.base}/{instance}"

    def webhook_url(self, instance):
        return f"{self.base}/{instance}/push"

    def set_weights(self, weights):
        """`weights`: outcome -> how many of each per deck (whole numbers)."""
        assert set(weights) <= set(self.OUTCOMES), weights
        with self.lock:
            self.weights = dict(weights)
            self.deck = []

    def _deal(self):
        if not self.deck:
            self.deck = [o for o, n in self.weights.items() for _ in range(n)]
            self.random.shuffle(self.deck)
        return self.deck.pop()

    def hold_next(self):
        caught = threading.Event()
        with self.lock:
            self.holding = (caught, threading.Event())
        return caught

    def release(self):
        with self.lock:
            holding, self.holding = self.holding, None
        if holding:
            holding[1].set()

    def _read(self, h, raw):
        """(instance, provider, message fields) of a well-formed request with good credentials, or
        why it is refused: (status, error)."""
        parts = h.path.strip("/").split("/")
        try:
            message = json.loads(raw)
        except ValueError:
            return 400, "not JSON"
        if parts[1:] == ["v3", "push"]:
            if h.headers.get("Authorization") != self.authorization:
                return 401, "jpush: bad basic auth"
            platform = message.get("platform")
            extras = (message.get("notification", {}).get(platform) or {}).get("extras") or {}
            ids = message.get("audience", {}).get("registration_id") or []
            if platform not in ("android", "ios") or len(ids) != 1 or "push_id" not in extras:
                return 400, f"jpush: malformed {str(message)[:200]}"
            # Android: notification priority 2 for high; iOS through JPush says nothing of it
            android = message["notification"].get("android") or {}
            priority = None if platform == "ios" else "high" if android.get("priority") == 2 else "normal"
            return parts[0], "jpush", (extras["push_id"], ids[0], extras.get("kind"), extras.get("ticket_id"), priority)
        if parts[1:] == ["push"]:
            if not signed(self.webhook_secret, raw, h.headers.get("X-Repairdesk-Signature")):
                return 401, "webhook: bad signature"
            data = message.get("data") or {}
            return parts[0], "webhook", (message.get("id"), message.get("token"), data.get("kind"),
                                         data.get("ticket_id"), message.get("priority"))
        return 404, f"no such path {h.path}"

    def decide(self, h, raw):
        read = self._read(h, raw)
        if isinstance(read[0], int):
            with self.lock:
                self.refused.append(read[1])
            return self.answering(h, read[0], {"error": {"code": 1004 if read[0] == 401 else 1003, "message": read[1]}})
        instance, provider, fields = read
        with self.lock:
            held = self.holding if self.holding and not self.holding[0].is_set() else None
            outcome = "ok" if held else self._deal()
            self.answered[outcome] += 1
            if outcome == "ok":
                self.accepted.append(Pushed(fields[0], instance, time.time(), provider, *fields[1:]))
            if held:
                self.held = self.accepted[-1]
                held[0].set()
        if held:
            def respond():
                held[1].wait(15)
                self.answer(h, 200, {"sendno": "0", "msg_id": "held"})
            return respond
        if outcome == "ok":
            return self.answering(h, 200, {"sendno": "0", "msg_id": str(len(self.accepted))})
        if outcome == "429":
            return self.answering(h, 429, {"error": {"code": 2002, "message": "Request times exceeded"}},
                                  {"Retry-After": "1"})
        if outcome == "hang":
            return self.answering(h, 503, {"error": {"code": 1000, "message": "too late"}}, after_secs=self.hang_secs)
        if outcome == "drop":
            return lambda: None  # the handler ends: the connection closes with no answer
        return self.answering(h, int(outcome), {"error": {"code": 1000, "message": "server error"}})

    def copies(self):
        """The copies accepted so far, in order."""
        with self.lock:
            return list(self.accepted)
