#!/usr/bin/env python3
"""Kill -9 the server during a stream of writes, restart it, and check that nothing was lost or
duplicated.

Usage: scripts/crash_restart.py [--engine sqlite|postgres] [--binary target/debug/repairdesk]
                                [--writes 300] [--kills 3]

A writer creates tickets, each with its own Idempotency-Key, as fast as the server answers.
Every few seconds the server is killed with SIGKILL and started again. Requests that got no
answer (or a 5xx) are retried with the same key until they get a 2xx. At the end:
  - every key that got a 2xx names a ticket that exists, with the same id as first answered;
  - the site holds exactly one ticket per key (nothing duplicated, nothing lost);
  - ticket numbers are consecutive with no gap or duplicate;
  - on SQLite, PRAGMA integrity_check answers ok.
Exits 0 when all hold. Uses only the standard library, plus psql for PostgreSQL.
"""
import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

ADMIN_PASSWORD = "crash-admin-pass"
PORT = 18190


def request(method, path, token=None, body=None, headers=None, timeout=5):
    req = urllib.request.Request(f"http://127.0.0.1:{PORT}{path}", method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, data=data, timeout=timeout) as res:
            return res.status, json.loads(res.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return None, None


def start(binary, env):
    log = open(os.path.join(env["CRASH_DIR"], "server.log"), "ab")
    proc = subprocess.Popen([binary], env=env, stdout=log, stderr=log)
    for _ in range(100):
        if request("GET", "/healthz")[0] == 200:
            return proc
        time.sleep(0.1)
    raise SystemExit("server did not start; see server.log")


def login(username, password):
    status, body = request("POST", "/api/v1/auth/login", body={"username": username, "password": password})
    assert status == 200, (status, body)
    return body["access_token"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", default="sqlite", choices=["sqlite", "postgres"])
    ap.add_argument("--binary", default="target/debug/repairdesk")
    ap.add_argument("--writes", type=int, default=300)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    args = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="rd-crash-")
    pg_db = None
    if args.engine == "sqlite":
        db_path = os.path.join(workdir, "rd.db")
        url = f"sqlite://{db_path}"
    else:
        pg_db = f"rd_crash_{uuid.uuid4().hex[:12]}"
        subprocess.run(["psql", f"{args.pg}/postgres", "-qc", f"CREATE DATABASE {pg_db}"], check=True)
        url = f"{args.pg}/{pg_db}"
    env = dict(os.environ, DATABASE_URL=url, REPAIRDESK_ADDR=f"127.0.0.1:{PORT}",
               REPAIRDESK_ADMIN_PASSWORD=ADMIN_PASSWORD, RUST_LOG="warn", CRASH_DIR=workdir)
    proc = start(args.binary, env)
    try:
        admin = login("admin", ADMIN_PASSWORD)
        status, site = request("POST", "/api/v1/sites", admin, {"code": "CR", "name": "crash", "timezone": "Asia/Shanghai"})
        assert status == 201, site
        status, _ = request("POST", "/api/v1/users", admin, {"username": "crash.desk", "password": "crash-desk-pass",
                            "display_name": "desk", "role": "dispatcher", "site_ids": [site["id"]]})
        assert status == 201
        desk = login("crash.desk", "crash-desk-pass")

        answered = {}   # key -> ticket id of the first 2xx
        pending = []    # keys sent without a 2xx yet
        kill_at = sorted(random.sample(range(20, args.writes), args.kills))
        sent = 0
        while sent < args.writes or pending:
            if kill_at and sent >= kill_at[0]:
                kill_at.pop(0)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                proc = start(args.binary, env)
                desk = login("crash.desk", "crash-desk-pass")
            if pending and (sent >= args.writes or random.random() < 0.3):
                key = pending.pop(0)
            else:
                key = f"crash-{uuid.uuid4()}"
                sent += 1
            body = {"site_id": site["id"], "area": "public", "location": key, "category": "water",
                    "urgency": "normal", "description": "crash test", "reporter_name": "x", "channel": "phone"}
            status, res = request("POST", "/api/v1/tickets", desk, body, {"Idempotency-Key": key})
            if status in (200, 201):
                if key in answered and answered[key] != res["id"]:
                    raise SystemExit(f"FAIL: key {key} answered two tickets: {answered[key]} and {res['id']}")
                answered[key] = res["id"]
            elif status in (None, 409, 502, 503) or (status or 0) >= 500:
                pending.append(key)  # no answer or in progress: try again later with the same key
                time.sleep(0.05)
            else:
                raise SystemExit(f"FAIL: unexpected {status} {res}")

        tickets = []
        cursor = None
        while True:
            path = "/api/v1/tickets?limit=200" + (f"&cursor={cursor}" if cursor else "")
            status, page = request("GET", path, desk)
            assert status == 200, page
            tickets += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        by_location = {}
        for t in tickets:
            by_location.setdefault(t["location"], []).append(t["id"])
        dupes = {k: v for k, v in by_location.items() if len(v) > 1}
        missing = [k for k in answered if k not in by_location]
        wrong = [k for k, tid in answered.items() if by_location.get(k, [tid])[0] != tid]
        numbers = sorted(int(t["number"].rsplit("-", 1)[1]) for t in tickets)
        gaps = numbers != list(range(1, len(numbers) + 1))
        print(f"{args.engine}: {len(answered)} writes answered 2xx, {len(tickets)} tickets stored, "
              f"{len(dupes)} duplicated, {len(missing)} missing, {len(wrong)} answered with another id, "
              f"numbers consecutive: {not gaps}")
        ok = not dupes and not missing and not wrong and not gaps and len(tickets) == len(answered)
        if args.engine == "sqlite":
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            check = sqlite3.connect(db_path).execute("PRAGMA integrity_check").fetchone()[0]
            print(f"sqlite integrity_check: {check}")
            ok = ok and check == "ok"
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        if pg_db:
            subprocess.run(["psql", f"{args.pg}/postgres", "-qc", f"DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)"])


if __name__ == "__main__":
    sys.exit(main())
