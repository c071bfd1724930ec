"""What the fault scripts share: HTTP calls, a server process, a fresh database with a site and
its users, an SMS gateway stub, latency figures, and how a run ends (`run`: PASS or FAIL last,
also when the run itself breaks). Standard library only, plus psql for PostgreSQL. The scripts put
their own folder on sys.path and import this module.
"""
import hashlib
import hmac
import json
import os
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


class SmsGateway:
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
        self.port = port or free_port()
        self.secret = secret.encode()
        self.slow_secs = slow_secs
        self.url = f"http://127.0.0.1:{self.port}/sms"
        self.lock = threading.Lock()
        self.mode = "ok"
        self.received = Counter()   # message id -> requests with a good signature
        self.accepted = Counter()   # message id -> 2xx answers
        self.received_in = Counter()  # mode -> requests received in it
        self.messages = {}          # message id -> the JSON of its accepted copy
        self.bad_signatures = 0
        self.httpd = None
        self.thread = None
        self._listen()

    def _listen(self):
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.0: one request per connection, so no kept-alive connection outlives "down"
            protocol_version = "HTTP/1.0"

            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                gateway.handle(self, raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def _close(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def set_mode(self, mode):
        assert mode in self.MODES, mode
        with self.lock:
            self.mode = mode
        if mode == "down":
            self._close()
        elif self.httpd is None:
            self._listen()

    def handle(self, h, raw):
        expected = "sha256=" + hmac.new(self.secret, raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, h.headers.get("X-Repairdesk-Signature", "")):
            with self.lock:
                self.bad_signatures += 1
            return self._answer(h, 401, {"error": "bad signature"})
        message = json.loads(raw)
        with self.lock:
            mode = self.mode
            self.received[message["id"]] += 1
            self.received_in[mode] += 1
            if mode == "ok":
                self.accepted[message["id"]] += 1
                self.messages[message["id"]] = message
        if mode == "ok":
            self._answer(h, 200, {"id": f"stub-{message['id'][:8]}", "status": "queued"})
        elif mode == "slow":
            time.sleep(self.slow_secs)
            self._answer(h, 503, {"error": "too slow"})
        elif mode == "429":
            self._answer(h, 429, {"error": "slow down"}, {"Retry-After": "1"})
        else:
            self._answer(h, 500, {"error": "gateway failure"})

    @staticmethod
    def _answer(h, status, body, headers=None):
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

    def snapshot(self):
        with self.lock:
            return Counter(self.received), Counter(self.accepted), dict(self.messages)

    def close(self):
        self._close()
