#!/usr/bin/env python3
"""RxDB, the offline-first database phone apps use, replicating against the server: runs
tests/rxdb/replication.test.mjs (RxDB from npm, memory storage, `replicateRxCollection`, no custom
conflict handler) against a server on a fresh database.

Usage: scripts/rxdb.py [--engine sqlite|postgres] [--binary target/debug/repairdesk]
                       [--pg postgres://postgres@127.0.0.1:5432]

Installs the test's npm packages into tests/rxdb/node_modules (`npm ci`) when they are missing,
starts the server on a free port with a new database (a SQLite file in a temporary folder, or a
PostgreSQL database made and dropped with psql), runs `node --test`, stops the server. Needs
Node 20 and npm. Exits 0 when the test passes; the last line is PASS or FAIL. The binary defaults
to $CARGO_TARGET_DIR/debug/repairdesk (target/ when unset).
"""
import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Database, Server, default_binary, npm_installed, run, verdict  # noqa: E402

ADMIN_PASSWORD = "rxdb-test-admin"
TEST_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "rxdb")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", default="sqlite", choices=["sqlite", "postgres"])
    ap.add_argument("--binary", default=default_binary())
    ap.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    args = ap.parse_args()

    npm_installed(TEST_DIR, "rxdb", "RxDB test")

    workdir = tempfile.mkdtemp(prefix="rd_rxdb_")
    db = Database(args.engine, workdir, args.pg, prefix="rd_rxdb")
    server = Server(args.binary, None, {
        "DATABASE_URL": db.url,
        "REPAIRDESK_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "REPAIRDESK_LOG_FORMAT": "json",
    }, workdir)
    problems = []
    try:
        server.start()
        env = dict(os.environ, RD_URL=server.base, RD_ADMIN_PASSWORD=ADMIN_PASSWORD)
        done = subprocess.run(["node", "--test", "replication.test.mjs"], cwd=TEST_DIR, env=env)
        if done.returncode != 0:
            problems.append(f"the RxDB test failed on {args.engine} (server log: {server.log_path})")
    finally:
        server.kill()
        db.drop()
    return verdict(problems)


if __name__ == "__main__":
    run(main)
