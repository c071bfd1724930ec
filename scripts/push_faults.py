#!/usr/bin/env python3
"""Push services that fail at random and a server SIGKILLed mid-delivery, under a desk and
technicians at work: each push outbox message must reach its phone's service once, none lost,
none to an off-duty technician, none about a ticket taken before it went out.

Usage: scripts/push_faults.py [--engine sqlite|postgres] [--instances 1|2] [--quick]
                              [--binary target/debug/repairdesk] [--pg postgres://postgres@127.0.0.1:5432]
                              [--secs 20] [--kills 4] [--technicians 8] [--seed N]

The server pushes through its `jpush` provider (half of the phones) and its `webhook` provider
(the other half) to a stub of both services in this script (harness.PushGateway, a free port),
which checks JPush's basic auth and the webhook's signature, reads each message's id (JPush: the
extras' `push_id`; webhook: `id`) and answers each request at random, dealt from a shuffled deck
of 20: 9 times 2xx (a delivery: the only answer that counts), 3 times 429 with Retry-After: 1,
twice 500, twice 503, once no answer for 3.5 s (past the server's 2 s timeout; then 503), 3 times
the connection dropped unanswered. The server runs with
REPAIRDESK_PUSH_TIMEOUT_SECS=2, REPAIRDESK_PUSH_LEASE_SECS=4, REPAIRDESK_PUSH_RETRY_BASE_MS=200,
REPAIRDESK_OUTBOX_INTERVAL_MS=200 and REPAIRDESK_PUSH_MAX_ATTEMPTS=100 (the faults, not the limit
of attempts, decide here; giving up is tested in tests/api/push.rs).

Every technician (one site, one trade) registers a phone (POST /devices); one stays off duty all
along and one goes off duty halfway (POST /me/duty). For --secs seconds a desk creates tickets
(and, a second in, a burst of 10 emergencies), assigns and reassigns some to any technician
(off-duty ones included) and cancels some, and the technicians on duty read the pool and claim.
Meanwhile the server is SIGKILLed --kills times, evenly spread, and started again on the same
database: each time the load pauses, the stub holds the next push it receives, counts it
delivered and leaves it unanswered, and the instance that sent it is killed right then, between
the service taking the message and the outbox recording it. Then the stub answers 2xx only and
the outbox must empty within 60 s.

A message the service took but the outbox had not marked sent when its instance died (the stub
saw it from that instance since its start, and the database, read while the instance is dead,
says it is not sent) is sent again once its lease runs out: at least once is all an outbox can
do there, as the service and the database share no transaction. Such a message may reach the
stub once more per kill it was caught in, and the run reports how many did; the message keeps its
id, so the phone drops the copy (docs/push.md). Any other duplicate fails the run.

With --instances 2 (PostgreSQL only) two servers share the database, both delivering (each
posts under its own path on the stub, so it knows who sent what); the load alternates between
them, each kill hits the instance that sent the held message, and neither log (RUST_LOG=warn) nor
PostgreSQL's pg_stat_database may count a deadlock.

Checks: no 5xx and no unanswered request; every outbox message is sent or superseded (none
pending, failed or unregistered); a sent one reached the stub once, or more only as above; a
superseded one never, or only as above; the stub took nothing the outbox does not hold, and each
copy names the kind, ticket, token and priority of its outbox row; every ticket created has one
pool_added message for every technician on duty all along; none for the one off duty, none for
the one gone off duty about a ticket created after; no pool_added reached the stub more than 1 s
after its ticket was claimed, assigned or cancelled (answered); each fault answered at least
once, a kill caught a delivery, and something of each kind was sent. Exits 0 when all hold;
the last line is PASS or FAIL, also when the run itself breaks. --quick (CI) is --secs 7
--kills 2 --technicians 6, about 12 s on a debug build (20 s beside a build). The binary defaults to
$CARGO_TARGET_DIR/debug/repairdesk (target/ when unset).
"""
import argparse
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Database, PushGateway, Server, create_site, create_user, default_binary, expect,  # noqa: E402
                     guarded, percentiles, run, verdict)

ADMIN_PASSWORD = "push-faults-admin"
JWT_SECRET = "push-faults-shared-signing-key-0123456789ab"
APP_KEY = "7d431e42dfa6a6d693ac2d04"
MASTER_SECRET = "push-faults-master-secret"
WEBHOOK_SECRET = "push-faults-webhook-secret"
TIMEOUT_SECS = 2
LEASE_SECS = 4
# how long after its lease check a push may reach the stub: a pool_added received later than
# this after its ticket left the pool was checked after that
SLACK_SECS = 1.0
DRAIN_LIMIT_SECS = 60
# a deck of the stub's answers, shuffled: each one of them at least once every 20 requests
FAULTS = {"ok": 9, "429": 3, "500": 2, "503": 2, "hang": 1, "drop": 3}


class Gate:
    """Lets the load through unless closed; `close` waits for the requests under way."""

    def __init__(self):
        self.cond = threading.Condition()
        self.shut = False
        self.inside = 0

    def __enter__(self):
        with self.cond:
            while self.shut:
                self.cond.wait()
            self.inside += 1

    def __exit__(self, *exc):
        with self.cond:
            self.inside -= 1
            self.cond.notify_all()

    def close(self):
        with self.cond:
            self.shut = True
            while self.inside:
                self.cond.wait()

    def open(self):
        with self.cond:
            self.shut = False
            self.cond.notify_all()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", default="sqlite", choices=["sqlite", "postgres"])
    ap.add_argument("--instances", type=int, default=1, choices=[1, 2], help="2: two servers on one PostgreSQL database")
    ap.add_argument("--binary", default=default_binary())
    ap.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    ap.add_argument("--secs", type=float, help="length of the load under faults (20; --quick 7)")
    ap.add_argument("--kills", type=int, help="SIGKILLs during it (4; --quick 2)")
    ap.add_argument("--technicians", type=int, help="technicians with a phone, 4 at least (8; --quick 6)")
    ap.add_argument("--seed", type=int, help="the stub's and the load's random choices")
    ap.add_argument("--quick", action="store_true", help="the short form CI runs")
    args = ap.parse_args()
    args.secs = args.secs or (7.0 if args.quick else 20.0)
    args.kills = args.kills if args.kills is not None else (2 if args.quick else 4)
    args.technicians = max(4, args.technicians or (6 if args.quick else 8))
    if args.instances == 2 and args.engine != "postgres":
        ap.error("--instances 2 needs --engine postgres: several instances share PostgreSQL, not a SQLite file")
    args.seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    random.seed(args.seed)

    workdir = tempfile.mkdtemp(prefix="rd-pushfaults-")
    gateway = db = None
    servers = []
    try:
        gateway = PushGateway(None, APP_KEY, MASTER_SECRET, WEBHOOK_SECRET, hang_secs=TIMEOUT_SECS + 1.5, seed=args.seed)
        db = Database(args.engine, workdir, args.pg, prefix="rd_pushfaults")
        return run_load(args, workdir, gateway, db, servers)
    finally:
        for s in servers:
            s.kill()
        if gateway:
            gateway.release()
            gateway.close()
        if db:
            db.drop()


def run_load(args, workdir, gateway, db, servers):
    labels = "ab"[:args.instances]
    for label in labels:
        servers.append(Server(args.binary, None, {
            "DATABASE_URL": db.url, "REPAIRDESK_ADMIN_PASSWORD": ADMIN_PASSWORD, "REPAIRDESK_JWT_SECRET": JWT_SECRET,
            "RUST_LOG": "warn",
            "REPAIRDESK_JPUSH_APP_KEY": APP_KEY, "REPAIRDESK_JPUSH_MASTER_SECRET": MASTER_SECRET,
            "REPAIRDESK_JPUSH_BASE_URL": gateway.jpush_base(label),
            "REPAIRDESK_PUSH_WEBHOOK_URL": gateway.webhook_url(label), "REPAIRDESK_PUSH_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "REPAIRDESK_PUSH_TIMEOUT_SECS": str(TIMEOUT_SECS), "REPAIRDESK_PUSH_LEASE_SECS": str(LEASE_SECS),
            "REPAIRDESK_PUSH_RETRY_BASE_MS": "200", "REPAIRDESK_PUSH_MAX_ATTEMPTS": "100",
            "REPAIRDESK_OUTBOX_INTERVAL_MS": "200", "REPAIRDESK_MAX_ACTIVE_TICKETS": "100000",
        }, workdir, f"server-{label.upper()}.log"))
    started_at = {}  # instance label -> time.time() of its last start
    for label, s in zip(labels, servers):
        started_at[label] = time.time()
        s.spawn()
    for s in servers:
        s.wait_healthy(200)

    problems = []
    lock = threading.Lock()
    seen = []  # (what, status, seconds) of every load request
    gate = Gate()
    turn = [0]

    def request(method, path, token, body=None, what="other", gated=True):
        """One request to the next instance, recorded; a 5xx or no answer is a problem."""
        with lock:
            turn[0] += 1
            s = servers[turn[0] % len(servers)]
        if gated:
            with gate:
                r = s.request(method, path, token, body)
        else:
            r = s.request(method, path, token, body)
        with lock:
            seen.append((what, r.status, r.seconds))
            if r.status is None or r.status >= 500:
                problems.append(f"{what} {method} {path} answered {r.status} {str(r.body)[:200]}")
        return r

    s0 = servers[0]
    admin = s0.login("admin", ADMIN_PASSWORD)
    site = create_site(s0, admin, "PF", "推送故障")
    create_user(s0, admin, "push.desk", "push-desk-pass", "dispatcher", [site["id"]])
    desk = servers[-1].login("push.desk", "push-desk-pass")
    techs = []  # {id, token, name, device token}
    for n in range(args.technicians):
        name = f"push.tech{n}"
        user = create_user(servers[n % len(servers)], admin, name, "push-tech-pass", "technician", [site["id"]], ["water"])
        token = servers[(n + 1) % len(servers)].login(name, "push-tech-pass")
        provider = "jpush" if n % 2 == 0 else "webhook"
        phone = f"1a0018970a{n:06x}" if provider == "jpush" else f"phone-{n}"
        body = {"provider": provider, "token": phone, "platform": "ios" if n % 4 == 1 else "android", "app_version": "2.3.1"}
        expect(s0.request("POST", "/api/v1/devices", token, body), 201, f"registering {name}'s phone")
        techs.append({"id": user["id"], "token": token, "name": name, "phone": phone})
    off = techs[-1]        # off duty all along
    toggler = techs[-2]    # goes off duty halfway
    on_duty = techs[:-2]   # on duty all along
    expect(s0.request("POST", "/api/v1/me/duty", off["token"], {"on_duty": False}), 200, "going off duty")

    created = {}           # ticket id -> time.time() its create was sent
    left_pool = {}         # ticket id -> time.time() of the first answered claim, assign or cancel
    toggled = {}           # "sent", "answered": the toggler's duty change
    counts = Counter()     # what the load did
    ticket_seq = [0]

    def create_ticket(urgency="normal", gated=True):
        with lock:
            ticket_seq[0] += 1
            n = ticket_seq[0]
        body = {"site_id": site["id"], "area": "public", "location": f"{n}号楼大堂", "category": "water",
                "urgency": urgency, "description": "推送故障测试", "reporter_name": "物业", "channel": "phone"}
        sent = time.time()
        r = request("POST", "/api/v1/tickets", desk, body, "create", gated)
        if r.status == 201:
            with lock:
                created[r.body["id"]] = sent
                counts[f"created {urgency}"] += 1
        return r

    held_by = {}           # ticket id -> technician id, of tickets held (claimed or assigned, not cancelled)

    def left(ticket_id, r, what, holder=None):
        if r.status == 200:
            with lock:
                left_pool.setdefault(ticket_id, time.time())
                counts[what] += 1
                if holder:
                    held_by[ticket_id] = holder
                else:
                    held_by.pop(ticket_id, None)

    stop = threading.Event()
    window_started = time.monotonic()

    def desk_loop():
        n = 0
        burst_done = False
        while not stop.is_set():
            n += 1
            if not burst_done and time.monotonic() - window_started > 1:
                burst_done = True
                for _ in range(10):  # a burst pipe
                    create_ticket("emergency")
            create_ticket()
            with lock:
                recent = list(created)[-15:]
                held = list(held_by.items())
            if n % 3 == 0 and recent:
                # every other one reassigns a held ticket (its holder is told it is gone), else
                # hands out a recent one, taken or not
                tid, holder = random.choice(held) if held and n % 2 else (random.choice(recent), None)
                tech = random.choice([t for t in techs if t["id"] != holder])
                r = request("POST", f"/api/v1/tickets/{tid}/assign", desk, {"technician_id": tech["id"], "reason": "就近派单"},
                            "assign")
                left(tid, r, "assigned", tech["id"])
            if n % 4 == 0 and recent:
                # mostly a held ticket: its holder is told
                tid = random.choice(held)[0] if held and n % 8 else random.choice(recent)
                r = request("POST", f"/api/v1/tickets/{tid}/cancel", desk, {"reason": "业主取消"}, "cancel")
                left(tid, r, "cancelled")
            time.sleep(0.15)

    def tech_loop(tech):
        while not stop.is_set():
            r = request("GET", "/api/v1/pool", tech["token"])
            items = r.body.get("items", []) if r.status == 200 and isinstance(r.body, dict) else []
            if items and random.random() < 0.5:
                tid = random.choice(items[:5])["id"]
                left(tid, request("POST", f"/api/v1/tickets/{tid}/claim", tech["token"], {}, "claim"), "claimed", tech["id"])
            if tech is toggler and "sent" not in toggled and time.monotonic() - window_started > args.secs / 2:
                toggled["sent"] = time.time()
                expect(request("POST", "/api/v1/me/duty", tech["token"], {"on_duty": False}, "duty"), 200, "going off duty")
                toggled["answered"] = time.time()
            time.sleep(0.3)

    # ---- the load under faults, with kills
    gateway.set_weights(FAULTS)
    threads = [threading.Thread(target=guarded(desk_loop, problems, lock))]
    threads += [threading.Thread(target=guarded(tech_loop, problems, lock), args=(t,)) for t in on_duty + [toggler]]
    for t in threads:
        t.start()
    at_risk = Counter()   # message id -> kills that caught it taken by the service but not marked sent
    kills = []            # (instance, whether a held delivery was caught, messages at risk)
    try:
        for k in range(args.kills):
            time.sleep(max(0.0, window_started + args.secs * (k + 1) / (args.kills + 1) - time.monotonic()))
            gate.close()
            try:
                caught = gateway.hold_next()
                create_ticket(gated=False)  # something to deliver now
                held = caught.wait(5)
                victim = labels.index(gateway.held.instance) if held else k % len(servers)
                servers[victim].kill()
                label = labels[victim]
                deadline = time.monotonic() + 5
                time.sleep(0.2)  # what the dead instance had sent is read and decided by the stub
                while gateway.undecided() and time.monotonic() < deadline:
                    time.sleep(0.05)
                status = dict(db.query("SELECT id, status FROM push_outbox"))
                risky = {c.id for c in gateway.copies() if c.instance == label and c.at >= started_at[label]
                         and status.get(c.id) != "sent"}
                for i in risky:
                    at_risk[i] += 1
                kills.append((label, held, len(risky)))
                gateway.release()
                started_at[label] = time.time()
                servers[victim].start(200)
            finally:
                gate.open()
        time.sleep(max(0.0, window_started + args.secs - time.monotonic()))
    finally:
        stop.set()
        for t in threads:
            t.join()
    load_secs = time.monotonic() - window_started

    # ---- the services answer again: the outbox must empty
    gateway.set_weights({"ok": 1})
    drained_from = time.monotonic()
    while True:
        waiting = int(db.query("SELECT COUNT(*) FROM push_outbox WHERE status IN ('pending', 'sending')")[0][0])
        if not waiting:
            break
        if time.monotonic() - drained_from > DRAIN_LIMIT_SECS:
            problems.append(f"{waiting} messages still waiting {DRAIN_LIMIT_SECS} s after the services recovered")
            break
        time.sleep(0.2)
    drain_secs = time.monotonic() - drained_from
    time.sleep(1.0)  # a few more delivery rounds: nothing may go out again

    # ---- checks
    rows = {r[0]: dict(zip(("user_id", "device_id", "ticket_id", "kind", "priority", "status", "attempts"), r[1:]))
            for r in db.query("SELECT id, user_id, device_id, ticket_id, kind, priority, status, attempts FROM push_outbox")}
    phones = {r[0]: r[1] for r in db.query("SELECT id, token FROM devices")}
    copies = {}  # message id -> its copies the stub took
    for c in gateway.copies():
        copies.setdefault(c.id, []).append(c)
    taken = {i: len(copies.get(i, ())) for i in rows}
    statuses = Counter(r["status"] for r in rows.values())
    unfinished = [i for i, r in rows.items() if r["status"] not in ("sent", "superseded")]
    if unfinished:
        problems.append(f"{len(unfinished)} messages neither sent nor superseded: "
                        f"{[(i, rows[i]['status']) for i in unfinished[:3]]}")
    lost = [i for i, r in rows.items() if r["status"] == "sent" and not taken[i]]
    if lost:
        problems.append(f"{len(lost)} messages marked sent that the services never took: {lost[:3]}")
    doubled = {i: taken[i] for i, r in rows.items() if taken[i] > (r["status"] == "sent") + at_risk[i]}
    if doubled:
        problems.append(f"{len(doubled)} messages taken more often than once (plus once per kill that caught them "
                        f"between the service and the commit): {list(doubled.items())[:3]}")
    explained = sum(taken[i] - 1 for i in rows if taken[i] > 1 and i not in doubled)
    unknown = [i for i in copies if i not in rows]
    if unknown:
        problems.append(f"the stub took {len(unknown)} ids not in the outbox: {unknown[:3]}")
    mismatched = [c for i, cs in copies.items() if i in rows for c in cs
                  if (c.kind, c.ticket_id, c.token) != (rows[i]["kind"], rows[i]["ticket_id"], phones.get(rows[i]["device_id"]))
                  or c.priority not in (None, rows[i]["priority"])]
    if mismatched:
        problems.append(f"{len(mismatched)} copies unlike their outbox row: {mismatched[:2]}")
    if gateway.refused:
        problems.append(f"the stub refused {len(gateway.refused)} requests: {gateway.refused[:3]}")

    # who was told of what
    pool_rows = Counter((r["ticket_id"], r["user_id"]) for r in rows.values() if r["kind"] == "pool_added")
    missing_pool = [(t, tech["name"], pool_rows[(t, tech["id"])]) for t in created for tech in on_duty
                    if pool_rows[(t, tech["id"])] != 1]
    if missing_pool:
        problems.append(f"{len(missing_pool)} (ticket, technician on duty) pairs without exactly one pool_added "
                        f"message: {missing_pool[:3]}")
    to_off = [i for i, r in rows.items() if r["kind"] == "pool_added" and (
        r["user_id"] == off["id"]
        or r["user_id"] == toggler["id"] and "answered" in toggled and created.get(r["ticket_id"], 0) > toggled["answered"])]
    if to_off:
        problems.append(f"{len(to_off)} pool_added messages for a technician off duty: {to_off[:3]}")
    late = [(c.id, round(c.at - left_pool[c.ticket_id], 2)) for cs in copies.values() for c in cs
            if c.kind == "pool_added" and c.ticket_id in left_pool and c.at > left_pool[c.ticket_id] + SLACK_SECS]
    if late:
        problems.append(f"{len(late)} pool_added pushed after their ticket left the pool (id, seconds after): {late[:3]}")

    # the run did what it claims to
    sent_kinds = Counter(rows[i]["kind"] for i in copies if i in rows)
    for outcome in PushGateway.OUTCOMES:
        if not gateway.answered[outcome]:
            problems.append(f"the stub never answered {outcome}: the run did not meet that fault")
    for kind in ("pool_added", "assigned", "unassigned", "cancelled"):
        if not sent_kinds[kind]:
            problems.append(f"no {kind} message was pushed")
    if not statuses["superseded"]:
        problems.append("no message was superseded (a ticket taken before its pool_added went out)")
    if not any(c.priority == "high" for cs in copies.values() for c in cs):
        problems.append("no emergency was pushed with high priority")
    if len(kills) != args.kills or (args.kills and not any(held for _, held, _ in kills)):
        problems.append(f"kills: {kills}: none caught a delivery between the service and the commit")
    for s, label in zip(servers, labels):
        if not s.alive():
            problems.append(f"instance {label.upper()} exited")
    deadlocks = ""
    if args.engine == "postgres":
        logged = {}
        for s, label in zip(servers, labels):
            with open(s.log_path, errors="replace") as f:
                logged[label.upper()] = sum(line.count("deadlock detected") for line in f)
        pg_deadlocks = int(db.query("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")[0][0])
        if any(logged.values()) or pg_deadlocks:
            problems.append(f"deadlocks: {logged} in the logs, {pg_deadlocks} counted by PostgreSQL")
        deadlocks = f"; deadlocks: logs {logged}, PostgreSQL {pg_deadlocks}"

    lat = percentiles([x[2] for x in seen])
    errors = sum(1 for x in seen if x[1] is None or x[1] >= 500)
    copies_total = sum(len(cs) for cs in copies.values())
    print(f"{args.engine}, {args.instances} instance(s), seed {args.seed}: {len(techs)} technicians "
          f"({len(on_duty)} on duty, 1 off, 1 going off halfway), {load_secs:.1f} s of load: {len(seen)} requests, "
          f"{errors} 5xx/unanswered, p50 {lat['p50']:.0f} ms, p99 {lat['p99']:.0f} ms; {dict(sorted(counts.items()))}")
    print(f"stub answered {dict(gateway.answered)}; {len(kills)} kills (instance, delivery held, messages at risk): "
          f"{kills}")
    print(f"outbox: {len(rows)} messages {dict(statuses)}, {sum(int(r['attempts']) for r in rows.values())} attempts, "
          f"taken by the stub by kind {dict(sent_kinds)}; emptied {drain_secs:.1f} s after the services recovered")
    print(f"stub took {copies_total} copies of {len(copies)} messages: {explained} more than once, each caught by a kill "
          f"between the service and the commit; {len(doubled)} otherwise doubled, {len(lost)} lost, {len(unknown)} "
          f"unknown, {len(late)} late pool_added, {len(to_off)} to off duty{deadlocks}; logs in {workdir}")
    return verdict(problems)


if __name__ == "__main__":
    run(main)
