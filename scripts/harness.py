"""What the fault scripts share: HTTP calls, a server process, a fresh database with a site and
its users, an SMS gateway stub, and latency figures. Standard library only, plus psql for
PostgreSQL. The scripts put their own folder on sys.path and import this module.
"""
import hashlib
import hmac
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, namedtuple
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# One HTTP exchange. status is None when no answer came; body is then the error's text.
Reply = namedtuple("Reply", "status content_type body seconds")


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
    """One repairdesk process on 127.0.0.1:`port`, logging to `workdir`/`log_name`."""

    def __init__(self, binary, port, env, workdir, log_name="server.log"):
        self.binary = binary
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
            if self.request("GET", "/healthz").status == 200:
                return self.proc
            if self.proc.poll() is not None:
                raise SystemExit(f"server on port {self.port} exited with {self.proc.returncode}; see {self.log_path}")
            time.sleep(0.1)
        raise SystemExit(f"server on port {self.port} did not start; see {self.log_path}")

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
        assert r.status == 200, (r.status, r.body)
        return r.body["access_token"]


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
            self.pg_db = f"{prefix}_{uuid.uuid4().hex[:12]}"
            subprocess.run(["psql", f"{pg}/postgres", "-qc", f"CREATE DATABASE {self.pg_db}"], check=True)
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
            subprocess.run(["psql", f"{self.pg}/postgres", "-qc", f"DROP DATABASE IF EXISTS {self.pg_db} WITH (FORCE)"])
            self.pg_db = None


def create_site(server, admin_token, code, name):
    r = server.request("POST", "/api/v1/sites", admin_token, {"code": code, "name": name, "timezone": "Asia/Shanghai"})
    assert r.status == 201, (r.status, r.body)
    return r.body


def create_user(server, admin_token, username, password, role, site_ids, trades=None):
    body = {"username": username, "password": password, "display_name": username, "role": role, "site_ids": site_ids}
    if trades is not None:
        body["trades"] = trades
    r = server.request("POST", "/api/v1/users", admin_token, body)
    assert r.status == 201, (r.status, r.body)
    return r.body


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
    """A webhook SMS gateway on 127.0.0.1:`port` that checks the X-Repairdesk-Signature HMAC and
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
        self.port = port
        self.secret = secret.encode()
        self.slow_secs = slow_secs
        self.url = f"http://127.0.0.1:{port}/sms"
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
