#!/usr/bin/env python3
"""Restart PostgreSQL under load: requests must fail fast with 503 problem+json (no hang past the
pool timeout, no 500, no panic) and the service must recover by itself once the database is back.

Usage: scripts/pg_restart.py [--binary target/debug/repairdesk]
                             [--pg postgres://postgres@127.0.0.1:5432] [--cluster main]
                             [--version 15] [--down 4] [--scratch-cluster] [--quick]

It creates a database, starts the server on it, keeps two writers creating tickets and one reader
polling /readyz, stops the PostgreSQL cluster for --down seconds with pg_ctlcluster, starts it
again, and checks what the clients saw: every request that failed answered 503 problem+json
`database_unavailable` within the pool timeout (some did: the outage was seen), a create succeeded
within 5 s of the database's return, and the server still runs. Whatever happens, it starts the
cluster again before it ends and says so if the cluster does not come back.

To leave the main cluster alone (other work on the machine uses it), --scratch-cluster creates a
throwaway cluster with pg_createcluster (trust auth, a free port), runs against it and drops it;
or point it at a second cluster of your own (`pg_createcluster 15 faults --port 5433`, trust
auth): `--pg postgres://postgres@127.0.0.1:5433 --cluster faults`. --version defaults to the one
installed under /etc/postgresql. --quick (CI) is --down 2 and a shorter lead-in, about 10 s.
Needs pg_ctlcluster (and pg_createcluster for --scratch-cluster) and the right to run them (root
or the postgres user). The last line is PASS or FAIL, also when the run itself breaks.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Broken, Database, Server, create_site, default_binary, free_port, run, verdict  # noqa: E402

POOL_TIMEOUT = 5.0  # the server's r2d2 connection timeout
RECOVERY_LIMIT = 5.0


def installed_version():
    try:
        versions = sorted(os.listdir("/etc/postgresql"), key=lambda v: [int(x) for x in v.split(".") if x.isdigit()])
    except OSError:
        versions = []
    return versions[-1] if versions else "15"


def pg_tool(cmd):
    """Runs a PostgreSQL cluster command; Broken with its output when it fails."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError:
        raise Broken(f"{cmd[0]} is not installed (postgresql-common)") from None
    if done.returncode != 0:
        raise Broken(f"{' '.join(cmd)} exited with {done.returncode}: {(done.stderr or done.stdout).strip()[:300]}")


def ready(port, secs):
    """Whether the cluster on `port` accepts connections within `secs`."""
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port)]).returncode == 0:
            return True
        time.sleep(0.2)
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=default_binary())
    ap.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    ap.add_argument("--cluster", default="main")
    ap.add_argument("--version", default=installed_version())
    ap.add_argument("--down", type=float, help="seconds the cluster stays down (4; --quick 2)")
    ap.add_argument("--scratch-cluster", action="store_true", help="run on a throwaway cluster, not --pg/--cluster")
    ap.add_argument("--quick", action="store_true", help="the short form CI runs")
    args = ap.parse_args()
    down_secs = args.down or (2.0 if args.quick else 4.0)
    lead_in = 1.0 if args.quick else 2.0

    pg, cluster, scratch = args.pg, args.cluster, None
    if args.scratch_cluster:
        pg_port = free_port()
        scratch = cluster = f"rd_pgrestart_{os.getpid()}"
        pg = f"postgres://postgres@127.0.0.1:{pg_port}"
        pg_tool(["pg_createcluster", args.version, cluster, "--port", str(pg_port), "--", "--auth=trust"])
    ctl = ["pg_ctlcluster", "--skip-systemctl-redirect", args.version, cluster]
    pg_port = pg.rsplit(":", 1)[1].split("/")[0]
    workdir = tempfile.mkdtemp(prefix="rd-pgrestart-")
    db = server = None
    stop = threading.Event()
    threads = []
    problems = []
    broken = True  # until the checks below ran
    try:
        if scratch:
            pg_tool(ctl + ["start"])
            if not ready(pg_port, 30):
                raise Broken(f"the scratch cluster {cluster} did not start")
        db = Database("postgres", workdir, pg, prefix="rd_pgrestart")
        server = Server(args.binary, None, {"DATABASE_URL": db.url, "REPAIRDESK_ADMIN_PASSWORD": "pg-restart-admin",
                                            "RUST_LOG": "warn"}, workdir)
        server.start()
        token = server.login("admin", "pg-restart-admin")
        site = create_site(server, token, "PG", "pg")

        seen = []  # (when, kind, status, content type, body, seconds)
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
        time.sleep(lead_in)
        down_at = time.monotonic() - t0
        pg_tool(ctl + ["stop", "-m", "fast"])
        time.sleep(down_secs)
        pg_tool(ctl + ["start"])
        up_at = time.monotonic() - t0
        # until a create succeeds after the return (or the limit is past), then a little more
        deadline = time.monotonic() + RECOVERY_LIMIT + 3
        while time.monotonic() < deadline and not any(s[1] == "create" and s[2] == 201 and s[0] > up_at for s in seen):
            time.sleep(0.1)
        time.sleep(1)
        stop.set()
        for t in threads:
            t.join()

        failed = [s for s in seen if s[2] != 200 and s[2] != 201]
        for when, kind, status, ctype, body, secs in failed:
            if status is None:
                problems.append(f"{kind} at {when:.1f}s got no answer: {body}")
            elif (status != 503 or not (ctype or "").startswith("application/problem+json")
                  or not isinstance(body, dict) or body.get("code") != "database_unavailable"):
                problems.append(f"{kind} at {when:.1f}s answered {status} {str(body)[:200]}")
        if not failed:
            problems.append("no request failed while the database was down: the outage was not seen")
        slowest = max((s[5] for s in seen), default=0)
        if slowest > POOL_TIMEOUT + 2:
            problems.append(f"a request took {slowest:.1f}s (pool timeout {POOL_TIMEOUT}s)")
        recovered = [s[0] for s in seen if s[1] == "create" and s[2] == 201 and s[0] > up_at]
        recovery = (recovered[0] - up_at) if recovered else None
        if recovery is None or recovery > RECOVERY_LIMIT:
            problems.append(f"no successful create within {RECOVERY_LIMIT:g} s of the database's return "
                            f"(first after {recovery})")
        if not server.alive():
            problems.append("the server exited")
        print(f"database down {down_at:.1f}s..{up_at:.1f}s; {len(seen)} requests, {len(failed)} answered 503 "
              f"database_unavailable, slowest {slowest:.2f}s, first create after the return: "
              f"{recovery if recovery is None else round(recovery, 2)}s")
        broken = False
    finally:
        stop.set()
        for t in threads:
            t.join()
        if server:
            server.kill()
        # the cluster runs again whatever happened above
        subprocess.run(ctl + ["start"], capture_output=True)
        if not ready(pg_port, 30):
            left_down = (f"PostgreSQL cluster {args.version}/{cluster} is not running after the test: "
                         f"start it with {' '.join(ctl)} start")
            if broken:  # the run's own failure is reported next; say this first
                print(f"problem: {left_down}")
            else:
                problems.append(left_down)
        if db:
            db.drop()
        if scratch:
            subprocess.run(["pg_dropcluster", args.version, scratch, "--stop"], capture_output=True)
    return verdict(problems)


if __name__ == "__main__":
    run(main)
