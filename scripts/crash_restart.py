#!/usr/bin/env python3
"""Kill -9 the server during a stream of writes, restart it, and check that nothing was lost or
duplicated.

Usage: scripts/crash_restart.py [--engine sqlite|postgres] [--binary target/debug/repairdesk]
                                [--writes 300] [--kills 3] [--quick]

Four writers create tickets, each with its own Idempotency-Key, as fast as the server answers;
meanwhile the server is killed with SIGKILL at random moments and started again. The writers keep
writing until every kill is done and they made --writes creates between them, so each kill lands
among writes. Requests that got no answer (or a 5xx, or 409 "still in progress") are retried with
the same key until they get a 2xx (giving up after 60 s on one key). At the end:
  - every key that got a 2xx names a ticket that exists, with the same id as first answered;
  - the site holds exactly one ticket per key (nothing duplicated, nothing lost);
  - ticket numbers are consecutive with no gap or duplicate;
  - on SQLite, PRAGMA integrity_check answers ok.
--quick (CI) is --writes 60 --kills 2, about 10 s on a debug build. The binary defaults to
$CARGO_TARGET_DIR/debug/repairdesk (target/ when unset); the port is a free one. Exits 0 when all
hold; the last line is PASS or FAIL, also when the run itself breaks. Uses only the standard
library, plus psql for PostgreSQL.
"""
import argparse
import os
import random
import signal
import sqlite3
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Database, Server, create_site, create_user, default_binary, expect, guarded,  # noqa: E402
                     run, verdict)

ADMIN_PASSWORD = "crash-admin-pass"
KEY_DEADLINE_SECS = 60


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", default="sqlite", choices=["sqlite", "postgres"])
    ap.add_argument("--binary", default=default_binary())
    ap.add_argument("--writes", type=int, help="creates at least, over the four writers (300; --quick 60)")
    ap.add_argument("--kills", type=int, help="SIGKILLs (3; --quick 2)")
    ap.add_argument("--quick", action="store_true", help="the short form CI runs")
    ap.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    args = ap.parse_args()
    writes = args.writes or (60 if args.quick else 300)
    kills = args.kills or (2 if args.quick else 3)

    workdir = tempfile.mkdtemp(prefix="rd-crash-")
    db = Database(args.engine, workdir, args.pg, prefix="rd_crash")
    server = None
    stop = threading.Event()
    threads = []
    try:
        server = Server(args.binary, None, {"DATABASE_URL": db.url, "REPAIRDESK_ADMIN_PASSWORD": ADMIN_PASSWORD,
                                            "RUST_LOG": "warn"}, workdir)
        server.start()
        admin = server.login("admin", ADMIN_PASSWORD)
        site = create_site(server, admin, "CR", "crash")
        create_user(server, admin, "crash.desk", "crash-desk-pass", "dispatcher", [site["id"]])
        desk = server.login("crash.desk", "crash-desk-pass")

        answered = {}   # key -> ticket id of the first 2xx
        lock = threading.Lock()
        token = {"desk": desk}
        problems = []
        retried = []
        kills_done = threading.Event()

        def write(key):
            body = {"site_id": site["id"], "area": "public", "location": key, "category": "water",
                    "urgency": "normal", "description": "crash test", "reporter_name": "x", "channel": "phone"}
            attempts = 0
            deadline = time.monotonic() + KEY_DEADLINE_SECS
            while not stop.is_set():  # the same key until a 2xx: the retry a phone or the desk would make
                attempts += 1
                status, _, res, _ = server.request("POST", "/api/v1/tickets", token["desk"], body,
                                                   {"Idempotency-Key": key})
                if status in (200, 201) and isinstance(res, dict):
                    with lock:
                        if key in answered and answered[key] != res["id"]:
                            problems.append(f"key {key} answered two tickets")
                        answered[key] = res["id"]
                        if attempts > 1:
                            retried.append(key)
                    return
                if status == 401:  # the restart happened between login and use: log in again
                    time.sleep(0.2)
                elif status not in (None, 409) and status < 500:
                    with lock:
                        problems.append(f"a create answered {status} {str(res)[:200]}")
                    return
                if time.monotonic() > deadline:
                    with lock:
                        problems.append(f"key {key}: no 2xx in {KEY_DEADLINE_SECS} s (last {status} {str(res)[:200]})")
                    stop.set()
                    return
                time.sleep(0.05)

        def writer(n):
            made = 0
            while not stop.is_set() and (made < n or not kills_done.is_set()):
                write(f"crash-{uuid.uuid4()}")
                made += 1

        # writers keep requests in flight while the server is killed under them
        threads = [threading.Thread(target=guarded(writer, problems, lock), args=(-(-writes // 4),)) for _ in range(4)]
        for t in threads:
            t.start()
        for _ in range(kills):
            time.sleep(random.uniform(0.5, 2.0))
            server.proc.send_signal(signal.SIGKILL)
            server.proc.wait()
            server.start()
            token["desk"] = server.login("crash.desk", "crash-desk-pass")
        kills_done.set()
        for t in threads:
            t.join()
        if problems:
            return verdict(problems)
        print(f"{len(answered)} keyed creates, {kills} SIGKILLs while they were in flight, "
              f"{len(retried)} creates interrupted and retried with their key")

        tickets = []
        cursor = None
        while True:
            path = "/api/v1/tickets?limit=200" + (f"&cursor={cursor}" if cursor else "")
            page = expect(server.request("GET", path, desk), 200, "listing the tickets")
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
        for label, bad in [("keys stored twice", dupes), ("answered keys not stored", missing),
                           ("keys stored under another id than answered", wrong)]:
            if bad:
                problems.append(f"{len(bad)} {label}: {list(bad)[:3]}")
        if gaps:
            problems.append(f"ticket numbers not consecutive: {numbers[:5]}...{numbers[-5:]}")
        if len(tickets) != len(answered):
            problems.append(f"{len(tickets)} tickets stored for {len(answered)} answered creates")
        if args.engine == "sqlite":
            server.kill()
            check = sqlite3.connect(db.path).execute("PRAGMA integrity_check").fetchone()[0]
            print(f"sqlite integrity_check: {check}")
            if check != "ok":
                problems.append(f"integrity_check: {check}")
        return verdict(problems)
    finally:
        stop.set()
        for t in threads:
            t.join()
        if server:
            server.kill()
        db.drop()


if __name__ == "__main__":
    run(main)
