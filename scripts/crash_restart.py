#!/usr/bin/env python3
"""Kill -9 the server during a stream of writes, restart it, and check that nothing was lost or
duplicated.

Usage: scripts/crash_restart.py [--engine sqlite|postgres] [--binary target/debug/repairdesk]
                                [--writes 300] [--kills 3]

Four writers create tickets, each with its own Idempotency-Key, as fast as the server answers;
meanwhile the server is killed with SIGKILL at random moments and started again. Requests that
got no answer (or a 5xx, or 409 "still in progress") are retried with the same key until they
get a 2xx. At the end:
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
import threading
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
        lock = threading.Lock()
        token = {"desk": desk}
        server = {"proc": proc}
        failures = []
        retried = []

        def write(key):
            body = {"site_id": site["id"], "area": "public", "location": key, "category": "water",
                    "urgency": "normal", "description": "crash test", "reporter_name": "x", "channel": "phone"}
            attempts = 0
            while True:  # the same key until a 2xx: the retry a phone or the desk would make
                attempts += 1
                status, res = request("POST", "/api/v1/tickets", token["desk"], body, {"Idempotency-Key": key})
                if status in (200, 201):
                    with lock:
                        if key in answered and answered[key] != res["id"]:
                            failures.append(f"key {key} answered two tickets")
                        answered[key] = res["id"]
                        if attempts > 1:
                            retried.append(key)
                    return
                if status == 401:  # the restart happened between login and use: log in again
                    time.sleep(0.2)
                elif status not in (None, 409) and status < 500:
                    failures.append(f"unexpected {status} {res}")
                    return
                time.sleep(0.05)

        def writer(n):
            for _ in range(n):
                write(f"crash-{uuid.uuid4()}")

        # writers keep requests in flight while the server is killed under them
        threads = [threading.Thread(target=writer, args=(args.writes // 4,)) for _ in range(4)]
        for t in threads:
            t.start()
        for _ in range(args.kills):
            time.sleep(random.uniform(0.5, 2.0))
            server["proc"].send_signal(signal.SIGKILL)
            server["proc"].wait()
            server["proc"] = start(args.binary, env)
            token["desk"] = login("crash.desk", "crash-desk-pass")
        for t in threads:
            t.join()
        proc = server["proc"]
        if failures:
            raise SystemExit("FAIL: " + "; ".join(failures[:5]))
        print(f"{len(answered)} keyed creates, {args.kills} SIGKILLs while they were in flight, "
              f"{len(retried)} creates interrupted and retried with their key")

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
