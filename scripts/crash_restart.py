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
from harness import Database, Server, create_site, create_user  # noqa: E402

ADMIN_PASSWORD = "crash-admin-pass"
PORT = 18190


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", default="sqlite", choices=["sqlite", "postgres"])
    ap.add_argument("--binary", default="target/debug/repairdesk")
    ap.add_argument("--writes", type=int, default=300)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    args = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="rd-crash-")
    db = Database(args.engine, workdir, args.pg, prefix="rd_crash")
    server = Server(args.binary, PORT, {"DATABASE_URL": db.url, "REPAIRDESK_ADMIN_PASSWORD": ADMIN_PASSWORD,
                                        "RUST_LOG": "warn"}, workdir)
    try:
        server.start()
        admin = server.login("admin", ADMIN_PASSWORD)
        site = create_site(server, admin, "CR", "crash")
        create_user(server, admin, "crash.desk", "crash-desk-pass", "dispatcher", [site["id"]])
        desk = server.login("crash.desk", "crash-desk-pass")

        answered = {}   # key -> ticket id of the first 2xx
        lock = threading.Lock()
        token = {"desk": desk}
        failures = []
        retried = []

        def write(key):
            body = {"site_id": site["id"], "area": "public", "location": key, "category": "water",
                    "urgency": "normal", "description": "crash test", "reporter_name": "x", "channel": "phone"}
            attempts = 0
            while True:  # the same key until a 2xx: the retry a phone or the desk would make
                attempts += 1
                status, _, res, _ = server.request("POST", "/api/v1/tickets", token["desk"], body,
                                                   {"Idempotency-Key": key})
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
            server.proc.send_signal(signal.SIGKILL)
            server.proc.wait()
            server.start()
            token["desk"] = server.login("crash.desk", "crash-desk-pass")
        for t in threads:
            t.join()
        if failures:
            raise SystemExit("FAIL: " + "; ".join(failures[:5]))
        print(f"{len(answered)} keyed creates, {args.kills} SIGKILLs while they were in flight, "
              f"{len(retried)} creates interrupted and retried with their key")

        tickets = []
        cursor = None
        while True:
            path = "/api/v1/tickets?limit=200" + (f"&cursor={cursor}" if cursor else "")
            status, _, page, _ = server.request("GET", path, desk)
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
            server.kill()
            check = sqlite3.connect(db.path).execute("PRAGMA integrity_check").fetchone()[0]
            print(f"sqlite integrity_check: {check}")
            ok = ok and check == "ok"
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        server.kill()
        db.drop()


if __name__ == "__main__":
    sys.exit(main())
