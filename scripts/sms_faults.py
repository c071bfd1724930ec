#!/usr/bin/env python3
"""The SMS gateway down, slow, answering 429 and answering 500 under API traffic: the API must stay
fast, messages must wait in the outbox, and each must be accepted by the gateway exactly once once
it is back.

Usage: scripts/sms_faults.py [--engine sqlite|postgres] [--binary target/debug/repairdesk]
                             [--pg postgres://postgres@127.0.0.1:5432] [--phase-secs 5]
                             [--p99-ms 500] [--quick]

The server sends SMS through the webhook provider to a gateway stub in this script (a free port),
which checks the HMAC signature and counts, per message id, the requests it received and those it
answered 2xx ("accepted": the only answer that counts as a delivery). The server runs with
REPAIRDESK_SMS_TIMEOUT_SECS=1, REPAIRDESK_OUTBOX_INTERVAL_MS=200, REPAIRDESK_SMS_RETRY_BASE_MS=200.

Phases, each --phase-secs long: ok (the baseline), down (listener closed: connection refused),
slow (the stub sleeps 2.5 s, past the server's 1 s timeout, then answers 503, so an attempt the
server gave up on is never counted as accepted), 429, 500. In each, a desk creates in-home tickets
(each queues the resident's door-code SMS) and resends the code of earlier ones (one more SMS
each), three technicians read the pool and claim tickets, and a reader lists tickets and
escalations. Every request's latency is recorded. At the end of a bad phase the outbox must
hold every message of the phase undelivered (none marked sent while the gateway refused), or
superseded (a resent code replaces the one still waiting, which is then never sent); then the
gateway is switched to ok and every message not superseded must be accepted within 60 s.

Checks: in every phase no 5xx, no unanswered request, p99 of all requests under --p99-ms (500 ms,
generous for a debug build: the requests never wait on the gateway, whose attempts take up to
the 1 s timeout); every outbox row is sent and was accepted by the stub exactly once, or is
superseded and was never accepted, and the stub accepted nothing else; outbox rows = SMS-causing requests answered 2xx; no bad signature; no
sms_failed escalation. Exits 0 when all hold; the last line is PASS or FAIL, also when the run
itself breaks. --quick (CI) is --phase-secs 2, about 20 s on a debug build. The binary defaults to
$CARGO_TARGET_DIR/debug/repairdesk (target/ when unset).
"""
import argparse
import os
import random
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Database, Server, SmsGateway, create_site, create_user, default_binary, guarded,  # noqa: E402
                     percentiles, run, verdict)

SECRET = "sms-faults-webhook-secret"
ADMIN_PASSWORD = "sms-faults-admin"
TIMEOUT_SECS = 1
RECOVERY_LIMIT_SECS = 60
PHASES = ["ok", "down", "slow", "429", "500"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", default="sqlite", choices=["sqlite", "postgres"])
    ap.add_argument("--binary", default=default_binary())
    ap.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    ap.add_argument("--phase-secs", type=float, help="length of each gateway phase (5; --quick 2)")
    ap.add_argument("--p99-ms", type=float, default=500.0)
    ap.add_argument("--quick", action="store_true", help="the short form CI runs")
    args = ap.parse_args()
    args.phase_secs = args.phase_secs or (2.0 if args.quick else 5.0)

    workdir = tempfile.mkdtemp(prefix="rd-smsfaults-")
    gateway = db = None
    problems = []
    lock = threading.Lock()
    try:
        gateway = SmsGateway(None, SECRET, slow_secs=TIMEOUT_SECS + 1.5)
        db = Database(args.engine, workdir, args.pg, prefix="rd_smsfaults")
        return run_phases(args, workdir, gateway, db, problems, lock)
    finally:
        if gateway:
            gateway.close()
        if db:
            db.drop()


def run_phases(args, workdir, gateway, db, problems, lock):
    server = Server(args.binary, None, {
        "DATABASE_URL": db.url, "REPAIRDESK_ADMIN_PASSWORD": ADMIN_PASSWORD, "RUST_LOG": "warn",
        "REPAIRDESK_SMS_PROVIDER": "webhook", "REPAIRDESK_SMS_WEBHOOK_URL": gateway.url,
        "REPAIRDESK_SMS_WEBHOOK_SECRET": SECRET, "REPAIRDESK_SMS_TIMEOUT_SECS": str(TIMEOUT_SECS),
        "REPAIRDESK_OUTBOX_INTERVAL_MS": "200", "REPAIRDESK_SMS_RETRY_BASE_MS": "200",
        # one resend per ticket, a second after its first code; technicians may hold many tickets
        "REPAIRDESK_SMS_CODE_INTERVAL_SECS": "1", "REPAIRDESK_MAX_ACTIVE_TICKETS": "100000",
    }, workdir)
    try:
        server.start()
        admin = server.login("admin", ADMIN_PASSWORD)
        site = create_site(server, admin, "SF", "短信故障")
        create_user(server, admin, "sms.desk", "sms-desk-pass", "dispatcher", [site["id"]])
        desk = server.login("sms.desk", "sms-desk-pass")
        techs = []
        for i in range(3):
            create_user(server, admin, f"sms.tech{i}", "sms-tech-pass", "technician", [site["id"]], ["water"])
            techs.append(server.login(f"sms.tech{i}", "sms-tech-pass"))

        phone_seq = [0]
        sms_requests = [0]   # SMS-causing requests answered 2xx, all phases
        created = []         # (monotonic time, ticket id), for resends
        resent = set()

        def outbox_counts():
            rows = db.query("SELECT status, COUNT(*) FROM sms_outbox GROUP BY status")
            return {status: int(n) for status, n in rows}

        def outbox_attempts():
            return int(db.query("SELECT COALESCE(SUM(attempts), 0) FROM sms_outbox")[0][0])

        def run_phase(mode):
            seen = []  # (kind, status, seconds)
            stop = threading.Event()
            queued = [0]

            def record(kind, r):
                with lock:
                    seen.append((kind, r.status, r.seconds))

            def desk_loop():
                n = 0
                while not stop.is_set():
                    n += 1
                    with lock:
                        phone_seq[0] += 1
                        phone = f"139{phone_seq[0]:08d}"
                    body = {"site_id": site["id"], "area": "in_home", "location": f"{phone_seq[0]}号", "category": "water",
                            "urgency": "normal", "paid": False, "description": "短信故障测试", "reporter_name": "住户",
                            "reporter_phone": phone, "resident_supplies_parts": False, "channel": "phone"}
                    r = server.request("POST", "/api/v1/tickets", desk, body)
                    record("sms", r)
                    if r.status == 201:
                        with lock:
                            queued[0] += 1
                            created.append((time.monotonic(), r.body["id"]))
                    if n % 2 == 0:
                        with lock:
                            due = [tid for at, tid in created if time.monotonic() - at > 1.2 and tid not in resent]
                            tid = due[0] if due else None
                            if tid:
                                resent.add(tid)
                        if tid:
                            r = server.request("POST", f"/api/v1/tickets/{tid}/resend-code", desk, {})
                            record("sms", r)
                            if r.status == 202:
                                with lock:
                                    queued[0] += 1
                    time.sleep(0.1)

            def tech_loop(token):
                while not stop.is_set():
                    r = server.request("GET", "/api/v1/pool", token)
                    record("other", r)
                    items = r.body.get("items", []) if r.status == 200 and isinstance(r.body, dict) else []
                    if items:
                        tid = random.choice(items[:5])["id"]
                        record("other", server.request("POST", f"/api/v1/tickets/{tid}/claim", token, {}))
                        record("other", server.request("GET", f"/api/v1/tickets/{tid}", token))
                    time.sleep(0.1)

            def reader_loop():
                while not stop.is_set():
                    record("other", server.request("GET", "/api/v1/tickets?limit=50", desk))
                    record("other", server.request("GET", "/api/v1/escalations?open=true", desk))
                    time.sleep(0.1)

            before = outbox_counts()
            attempts_before = outbox_attempts()
            received_before = sum(gateway.snapshot()[0].values())
            gateway.set_mode(mode)
            threads = [threading.Thread(target=guarded(desk_loop, problems, lock)),
                       threading.Thread(target=guarded(reader_loop, problems, lock))]
            threads += [threading.Thread(target=guarded(tech_loop, problems, lock), args=(t,)) for t in techs]
            try:
                for t in threads:
                    t.start()
                time.sleep(args.phase_secs)
            finally:
                stop.set()
                for t in threads:
                    t.join()
            sms_requests[0] += queued[0]
            after = outbox_counts()
            attempts_in_mode = outbox_attempts() - attempts_before
            received_in_mode = sum(gateway.snapshot()[0].values()) - received_before
            waiting = after.get("pending", 0) + after.get("sending", 0)
            # a resent code replaces the one still waiting: that one is superseded, never sent
            superseded = after.get("superseded", 0) - before.get("superseded", 0)
            if mode != "ok":
                # the gateway took nothing: nothing new may be marked sent, all of the phase waits
                if after.get("sent", 0) != before.get("sent", 0):
                    problems.append(f"{mode}: {after.get('sent', 0) - before.get('sent', 0)} messages marked sent "
                                    "while the gateway accepted none")
                if waiting + superseded != queued[0]:
                    problems.append(f"{mode}: {waiting} messages waiting in the outbox and {superseded} superseded, "
                                    f"{queued[0]} queued in the phase")
            # back to ok: everything queued so far must be accepted
            gateway.set_mode("ok")
            switched = time.monotonic()
            while True:
                counts = outbox_counts()
                accepted = gateway.snapshot()[1]
                done = counts.get("sent", 0) + counts.get("superseded", 0)
                if done == sum(counts.values()) and len(accepted) >= counts.get("sent", 0):
                    break
                if time.monotonic() - switched > RECOVERY_LIMIT_SECS:
                    problems.append(f"{mode}: not all delivered {RECOVERY_LIMIT_SECS}s after the gateway returned: {counts}")
                    break
                time.sleep(0.1)
            recovered = time.monotonic() - switched
            every = percentiles([s for _, _, s in seen])
            sms = percentiles([s for kind, _, s in seen if kind == "sms"])
            errors = sum(1 for _, st, _ in seen if st is None or st >= 500)
            over_timeout = sum(1 for _, _, s in seen if s >= TIMEOUT_SECS)
            if errors:
                problems.append(f"{mode}: {errors} requests answered 5xx or not at all")
            if every["p99"] > args.p99_ms:
                problems.append(f"{mode}: p99 {every['p99']:.0f} ms over {args.p99_ms:.0f} ms")
            return {"mode": mode, "all": every, "sms": sms, "errors": errors, "over": over_timeout,
                    "queued": queued[0], "attempts": attempts_in_mode, "received": received_in_mode, "waiting": waiting if mode != "ok" else 0,
                    "superseded": superseded,
                    "recovered": recovered}

        results = [run_phase(mode) for mode in PHASES]
        time.sleep(1.0)  # a few more delivery rounds: nothing may go out again

        rows = db.query("SELECT id, status, attempts FROM sms_outbox")
        received, accepted, _ = gateway.snapshot()
        ids = {r[0] for r in rows}
        not_sent = [r for r in rows if r[1] not in ("sent", "superseded")]
        superseded = {r[0] for r in rows if r[1] == "superseded"}
        twice = {i: n for i, n in accepted.items() if n > 1}
        missing = [i for i in ids - superseded if accepted[i] == 0]
        replaced_sent = [i for i in superseded if accepted[i] > 0]
        unknown = [i for i in accepted if i not in ids]
        retried = sum(1 for i in ids if received[i] > 1)
        attempts = sum(int(r[2]) for r in rows)
        if len(rows) != sms_requests[0]:
            problems.append(f"{len(rows)} outbox rows for {sms_requests[0]} SMS-causing requests answered 2xx")
        if not_sent:
            problems.append(f"{len(not_sent)} outbox rows neither sent nor superseded: {not_sent[:3]}")
        if replaced_sent:
            problems.append(f"{len(replaced_sent)} superseded messages were accepted: {replaced_sent[:3]}")
        if twice:
            problems.append(f"{len(twice)} messages accepted more than once: {list(twice.items())[:3]}")
        if missing:
            problems.append(f"{len(missing)} messages never accepted: {missing[:3]}")
        if unknown:
            problems.append(f"the stub accepted {len(unknown)} ids not in the outbox")
        if gateway.bad_signatures:
            problems.append(f"{gateway.bad_signatures} requests with a bad signature")
        r = server.request("GET", "/api/v1/escalations", desk)
        failed = [e for e in r.body["items"] if e["kind"] == "sms_failed"] if r.status == 200 and isinstance(r.body, dict) else None
        if failed is None or failed:
            problems.append(f"sms_failed escalations: {failed if failed is not None else r}")
        if not server.alive():
            problems.append("the server exited")

        print(f"{args.engine}: gateway phases of {args.phase_secs:g}s; latency in ms over all requests "
              f"(the SMS-causing creates/resends alone in the sms p99 column)")
        print(f"{'phase':<6} {'reqs':>5} {'5xx':>4} {'p50':>6} {'p95':>6} {'p99':>6} {'max':>6} {'>=1s':>5} "
              f"{'sms p99':>8} {'queued':>6} {'tries':>6} {'stub got':>8} {'waiting':>7} {'delivered in':>12}")
        for x in results:
            a = x["all"]
            print(f"{x['mode']:<6} {a['n']:>5} {x['errors']:>4} {a['p50']:>6.1f} {a['p95']:>6.1f} {a['p99']:>6.1f} "
                  f"{a['max']:>6.1f} {x['over']:>5} {x['sms']['p99']:>8.1f} {x['queued']:>6} {x['attempts']:>6} {x['received']:>8} "
                  f"{x['waiting']:>7} {x['recovered']:>11.1f}s")
        print(f"outbox: {len(rows)} messages, {attempts} attempts recorded; stub: {sum(received.values())} requests "
              f"received ({retried} ids more than once), {sum(accepted.values())} accepted, "
              f"{len(twice)} accepted twice, {len(missing)} never accepted, {len(superseded)} superseded "
              f"({len(replaced_sent)} of them accepted), {gateway.bad_signatures} bad signatures")
        return verdict(problems)
    finally:
        server.kill()


if __name__ == "__main__":
    run(main)
