#!/usr/bin/env python3
"""Restart PostgreSQL under load: requests must fail fast with 503 problem+json (no hang past the
pool timeout, no 500, no panic) and the service must recover by itself once the database is back.

Usage: scripts/pg_restart.py [--binary target/debug/repairdesk]
                             [--pg postgres://postgres@127.0.0.1:5432] [--cluster main]
                             [--version 15] [--down 4]

It creates a database, starts the server on it, keeps two writers creating tickets and one reader
polling /readyz, stops the PostgreSQL cluster for --down seconds with pg_ctlcluster, starts it
again, and checks what the clients saw. To leave the main cluster alone, point it at a second
one (`pg_createcluster 15 faults --port 5433`, trust auth): `--pg postgres://postgres@127.0.0.1:5433
--cluster faults`.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Database, Server, create_site, verdict  # noqa: E402

PORT = 18191
POOL_TIMEOUT = 5.0  # the server's r2d2 connection timeout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/debug/repairdesk")
    ap.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    ap.add_argument("--cluster", default="main")
    ap.add_argument("--version", default="15")
    ap.add_argument("--down", type=float, default=4.0)
    args = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="rd-pgrestart-")
    db = Database("postgres", workdir, args.pg, prefix="rd_pgrestart")
    server = Server(args.binary, PORT, {"DATABASE_URL": db.url, "REPAIRDESK_ADMIN_PASSWORD": "pg-restart-admin",
                                        "RUST_LOG": "warn"}, workdir)
    ctl = ["pg_ctlcluster", "--skip-systemctl-redirect", args.version, args.cluster]
    try:
        server.start()
        token = server.login("admin", "pg-restart-admin")
        site = create_site(server, token, "PG", "pg")

        seen = []  # (when, kind, status, content type, body, seconds)
        stop = threading.Event()
        t0 = time.monotonic()

        def writer():
            while not stop.is_set():
                body = {"site_id": site["id"], "area": "public", "location": "泵房", "category": "water",
                        "urgency": "normal", "description": "restart test", "reporter_name": "x", "channel": "phone"}
                r = server.request("POST", "/api/v1/tickets", token, body, timeout=15)
                seen.append((time.monotonic() - t0, "create") + r)
                time.sleep(0.05)

        def reader():
            while not stop.is_set():
                r = server.request("GET", "/readyz", timeout=15)
                seen.append((time.monotonic() - t0, "readyz") + r)
                time.sleep(0.2)

        threads = [threading.Thread(target=writer), threading.Thread(target=writer), threading.Thread(target=reader)]
        for t in threads:
            t.start()
        time.sleep(2)
        down_at = time.monotonic() - t0
        subprocess.run(ctl + ["stop", "-m", "fast"], check=True)
        time.sleep(args.down)
        subprocess.run(ctl + ["start"], check=True)
        up_at = time.monotonic() - t0
        time.sleep(8)
        stop.set()
        for t in threads:
            t.join()

        problems = []
        failed = [s for s in seen if s[2] != 200 and s[2] != 201]
        for when, kind, status, ctype, body, secs in failed:
            if status is None:
                problems.append(f"{kind} at {when:.1f}s got no answer: {body}")
            elif (status != 503 or not (ctype or "").startswith("application/problem+json")
                  or not isinstance(body, dict) or body.get("code") != "database_unavailable"):
                problems.append(f"{kind} at {when:.1f}s answered {status} {body}")
        slowest = max((s[5] for s in seen), default=0)
        if slowest > POOL_TIMEOUT + 2:
            problems.append(f"a request took {slowest:.1f}s (pool timeout {POOL_TIMEOUT}s)")
        recovered = [s[0] for s in seen if s[1] == "create" and s[2] == 201 and s[0] > up_at]
        recovery = (recovered[0] - up_at) if recovered else None
        if recovery is None or recovery > 5:
            problems.append(f"no successful create within 5 s of the database's return (first after {recovery})")
        if not server.alive():
            problems.append("the server exited")
        print(f"database down {down_at:.1f}s..{up_at:.1f}s; {len(seen)} requests, {len(failed)} answered 503 "
              f"database_unavailable, slowest {slowest:.2f}s, first create after the return: "
              f"{recovery if recovery is None else round(recovery, 2)}s")
        return verdict(problems)
    finally:
        server.kill()
        subprocess.run(ctl + ["start"], stderr=subprocess.DEVNULL)
        db.drop()


if __name__ == "__main__":
    sys.exit(main())
