#!/usr/bin/env python3
"""The desk console in a real browser: runs tests/console/console.test.mjs (playwright-core from
npm driving Debian's Chromium, /usr/bin/chromium) against a server on a fresh database.

Usage: scripts/console.py [--engine sqlite|postgres] [--binary target/debug/repairdesk]
                          [--pg postgres://postgres@127.0.0.1:5432] [--screenshots docs/screenshots]

Installs the test's npm package into tests/console/node_modules (`npm ci`) when it is missing,
starts the server on a free port with a new database (a SQLite file in a temporary folder, or a
PostgreSQL database made and dropped with psql) whose clock scans every second and escalates a
ticket left unclaimed for 2 s, and whose codes may be resent a second apart, runs `node --test`, stops the server. With --screenshots, each
page the test visits is saved there as a PNG (the README shows those in docs/screenshots). Needs
Node 20, npm and Chromium (`apt-get install chromium`; CHROMIUM names another binary). Exits 0
when the test passes; the last line is PASS or FAIL. The binary defaults to
$CARGO_TARGET_DIR/debug/repairdesk (target/ when unset).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Broken, Database, Server, default_binary, npm_installed, run, verdict  # noqa: E402

ADMIN_PASSWORD = "console-test-admin"
TEST_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "console")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", default="sqlite", choices=["sqlite", "postgres"])
    ap.add_argument("--binary", default=default_binary())
    ap.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    ap.add_argument("--screenshots", default="")
    args = ap.parse_args()

    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not (os.path.isfile(chromium) or shutil.which(chromium)):
        raise Broken(f"no Chromium at {chromium}: apt-get install chromium (or set CHROMIUM)")
    npm_installed(TEST_DIR, "playwright-core", "console test")

    workdir = tempfile.mkdtemp(prefix="rd_console_")
    db = Database(args.engine, workdir, args.pg, prefix="rd_console")
    server = Server(args.binary, None, {
        "DATABASE_URL": db.url,
        "REPAIRDESK_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "REPAIRDESK_LOG_FORMAT": "json",
        "REPAIRDESK_SCAN_INTERVAL_SECS": "1",
        "REPAIRDESK_CLAIM_TIMEOUT_SECS": "2",
        # a code may be resent a second after the last (the test sees the refusal, then the resend)
        "REPAIRDESK_SMS_CODE_INTERVAL_SECS": "1",
    }, workdir)
    problems = []
    try:
        server.start()
        env = dict(os.environ, RD_URL=server.base, RD_ADMIN_PASSWORD=ADMIN_PASSWORD, CHROMIUM=chromium)
        if args.screenshots:
            env["RD_SCREENSHOTS"] = os.path.abspath(args.screenshots)
        done = subprocess.run(["node", "--test", "--test-concurrency=1", "console.test.mjs"], cwd=TEST_DIR, env=env)
        if done.returncode != 0:
            problems.append(f"the console test failed on {args.engine} (server log: {server.log_path})")
    finally:
        server.kill()
        db.drop()
    return verdict(problems)


if __name__ == "__main__":
    run(main)
