#!/usr/bin/env python3
"""Two server instances on one PostgreSQL database under a claim and sync load: no ticket may
have two winners, and each sync operation, escalation and SMS must be recorded (or delivered)
exactly once.

Usage: scripts/two_instances.py [--pg postgres://postgres@127.0.0.1:5432]
                                [--binary target/debug/repairdesk] [--technicians 40]
                                [--tickets 60] [--unclaimed 10] [--racers 4]

PostgreSQL only: several instances are supported on a shared PostgreSQL, not on one SQLite file
(README, Operations). The script creates a database, starts instances A and B (free ports) on it
at the same moment with the same REPAIRDESK_JWT_SECRET, REPAIRDESK_SCAN_INTERVAL_SECS=1,
REPAIRDESK_CLAIM_TIMEOUT_SECS=2 and the webhook SMS provider pointing at an always-ok gateway
stub in this script (HMAC checked, accepted ids counted). Through alternating
instances it creates the technicians and the in-home tickets (each queues a door-code SMS), then:
  - every race ticket gets --racers technicians at once, split between the instances; each
    claims over HTTP or, for about a third of them, in an offline sync batch (claim, arrive with
    the code the stub received, add_material, add_note) pushed to one instance; half of the
    batches go to both instances at the same moment (a retry racing the first try) and, after
    the race, once more to the instance they did not first go to;
  - --unclaimed tickets are left in the pool long enough to escalate (both instances scan);
  - readers list the pool and the escalations on both instances.
Checks, from the database (psql) and the API: at most one claimed event per ticket, by the
assignee, and exactly one per race ticket; at most one technician answered a win per ticket; one
sync_ops row per (client_id, op_id), every client's last_op_id equals its ops, every answer has a
result line per op it reached, each op is answered applied or rejected exactly once across a
client's answers (the rest are duplicates), the late resends answer only duplicates; no two escalations with the same dedupe key or the same ticket and kind,
each unclaimed ticket escalated once, one escalated event per escalation, and both instances
list the same escalations; every outbox message sent and accepted by the stub exactly once, one
per created ticket. No 5xx and no unanswered request; no deadlock: none in either instance's log
(server-A.log, server-B.log in the work folder, RUST_LOG=warn, where the server logs each deadlock
or serialization failure it retries) nor in PostgreSQL's count for the database
(pg_stat_database.deadlocks). Exits 0 when all hold; last line PASS or FAIL, also when the run
itself breaks (an unexpected answer is reported as a problem, not a crash).

It takes about 15 s on a debug build, most of it creating and logging in the technicians, so CI
runs it as it is: a smaller load would save little and meet less in the locks. The binary defaults
to $CARGO_TARGET_DIR/debug/repairdesk (target/ when unset).
"""
import argparse
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Database, Server, SmsGateway, broke, create_site, create_user, default_binary,  # noqa: E402
                     expect, guarded, percentiles, run, verdict)

SECRET = "two-instances-webhook-secret"
JWT_SECRET = "two-instances-shared-signing-key-0123456789"
ADMIN_PASSWORD = "two-instances-admin"
CLAIM_TIMEOUT_SECS = 2


def now_iso():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    ap.add_argument("--binary", default=default_binary())
    ap.add_argument("--technicians", type=int, default=40)
    ap.add_argument("--tickets", type=int, default=60, help="tickets raced for")
    ap.add_argument("--unclaimed", type=int, default=10, help="tickets left to escalate")
    ap.add_argument("--racers", type=int, default=4, help="technicians racing for each ticket")
    args = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="rd-twoinst-")
    gateway = db = None
    servers = []
    stop = threading.Event()
    problems = []
    seen = []  # (instance, what, status, seconds) of every load request
    lock = threading.Lock()

    def on(i):
        return servers[i % 2]

    def record(i, what, r):
        with lock:
            seen.append((i % 2, what, r.status, r.seconds))
        if r.status is None or r.status >= 500:
            with lock:
                problems.append(f"{what} on {'AB'[i % 2]}: {r.status} {str(r.body)[:200]}")
        return r

    try:
        gateway = SmsGateway(None, SECRET)
        db = Database("postgres", workdir, args.pg, prefix="rd_twoinst")
        env = {
            "DATABASE_URL": db.url, "REPAIRDESK_ADMIN_PASSWORD": ADMIN_PASSWORD, "REPAIRDESK_JWT_SECRET": JWT_SECRET,
            "RUST_LOG": "warn", "REPAIRDESK_SCAN_INTERVAL_SECS": "1",
            "REPAIRDESK_CLAIM_TIMEOUT_SECS": str(CLAIM_TIMEOUT_SECS),
            "REPAIRDESK_SMS_PROVIDER": "webhook", "REPAIRDESK_SMS_WEBHOOK_URL": gateway.url,
            "REPAIRDESK_SMS_WEBHOOK_SECRET": SECRET, "REPAIRDESK_SMS_TIMEOUT_SECS": "2",
            "REPAIRDESK_OUTBOX_INTERVAL_MS": "200", "REPAIRDESK_SMS_RETRY_BASE_MS": "200",
            # the race decides the winners, not the cap on active tickets
            "REPAIRDESK_MAX_ACTIVE_TICKETS": "1000",
        }
        servers += [Server(args.binary, None, env, workdir, f"server-{name}.log") for name in "AB"]
        for s in servers:  # both at once: migrations, signing key and admin are agreed through the database
            s.spawn()
        for s in servers:
            s.wait_healthy(200)
        admin = servers[0].login("admin", ADMIN_PASSWORD)
        site = create_site(servers[1], admin, "TI", "双实例")
        create_user(servers[0], admin, "two.desk", "two-desk-pass", "dispatcher", [site["id"]])
        desk = servers[1].login("two.desk", "two-desk-pass")

        # technicians, created and logged in through alternating instances
        techs = []  # (user id, token)
        for n in range(args.technicians):
            user = create_user(on(n), admin, f"two.tech{n:02d}", "two-tech-pass", "technician", [site["id"]], ["water"])
            techs.append((user["id"], on(n + 1).login(f"two.tech{n:02d}", "two-tech-pass")))

        def create_ticket(n, label):
            body = {"site_id": site["id"], "area": "in_home", "location": f"{label}-{n}", "category": "water",
                    "urgency": "normal", "paid": False, "description": "双实例测试", "reporter_name": "住户",
                    "reporter_phone": f"137{n:08d}", "resident_supplies_parts": False, "channel": "phone"}
            return expect(record(n, "create", on(n).request("POST", "/api/v1/tickets", desk, body)), 201,
                          f"creating ticket {label}-{n}")

        # the unclaimed ones first: their clock runs while the race goes on
        unclaimed = [create_ticket(n, "unclaimed") for n in range(args.unclaimed)]
        unclaimed_created = time.monotonic()
        race = [create_ticket(args.unclaimed + n, "race") for n in range(args.tickets)]
        created = len(unclaimed) + len(race)

        # the door codes reach the stub (sent by either instance); offline arrivals use them
        codes = {}
        deadline = time.monotonic() + 30
        while len(codes) < created and time.monotonic() < deadline:
            _, _, messages = gateway.snapshot()
            codes = {m["params"]["number"]: m["params"]["code"] for m in messages.values()}
            time.sleep(0.1)
        if len(codes) < created:
            problems.append(f"only {len(codes)} of {created} door codes reached the gateway within 30 s")

        # who races for what: --racers distinct technicians per ticket, split between the two
        # instances, a third of them by sync push
        plans = defaultdict(list)  # tech index -> [(ticket, via, instance)]
        for k, t in enumerate(race):
            for j, tech in enumerate(random.sample(range(len(techs)), args.racers)):
                via = "push" if random.random() < 1 / 3 else "http"
                plans[tech].append((t, via, k + j))
        wins = defaultdict(set)       # ticket id -> technicians answered a win
        pushes = []                   # (client_id, ops, user token, first instance)
        push_answers = defaultdict(list)
        retried_from = []             # retry_from of answers that stopped early
        start = threading.Barrier(len(techs) + 2)

        def push(i, token, client_id, ops, what):
            """Pushes until the server has every op (no `retry_from`); the bodies of the 200
            answers, the last one last ([] when none came)."""
            body = {"client_id": client_id, "schema_version": 1, "ops": ops}
            answers = []
            for _ in range(10):
                r = record(i, what, on(i).request("POST", "/api/v1/sync/push", token, body, timeout=30))
                if r.status == 200 and isinstance(r.body, dict):
                    answers.append(r.body)
                    if r.body.get("retry_from") is None:
                        return answers
                    with lock:
                        retried_from.append(r.body["retry_from"])
                time.sleep(0.5)
            with lock:
                problems.append(f"{what} of {client_id} not through after 10 tries")
            return answers

        def technician(n):
            user_id, token = techs[n]
            start.wait()
            for t, via, i in plans[n]:
                if via == "http":
                    r = record(i, "claim", on(i).request("POST", f"/api/v1/tickets/{t['id']}/claim", token, {}))
                    if r.status == 200:
                        with lock:
                            wins[t["id"]].add(user_id)
                    elif r.status != 409:
                        with lock:
                            problems.append(f"claim answered {r.status} {r.body}")
                    continue
                client_id = str(uuid.uuid4())
                ops = [
                    {"op_id": 1, "name": "claim", "ticket_id": t["id"], "args": {}, "device_time": now_iso()},
                    {"op_id": 2, "name": "arrive", "ticket_id": t["id"], "device_time": now_iso(),
                     "args": {"code": codes.get(t["number"], "000000"), "lat": 30.5, "lng": 114.3}},
                    {"op_id": 3, "name": "add_material", "ticket_id": t["id"], "device_time": now_iso(),
                     "args": {"id": str(uuid.uuid4()), "name": "角阀", "spec": "DN15", "quantity": "2", "unit": "个",
                              "unit_price_cents": 1500, "supplied_by": "company"}},
                    {"op_id": 4, "name": "add_note", "ticket_id": t["id"], "device_time": now_iso(),
                     "args": {"id": str(uuid.uuid4()), "note": "到场处理"}},
                ]
                retried = random.random() < 0.5
                with lock:
                    pushes.append((client_id, ops, token, i, retried))
                if retried:
                    # the phone gave up waiting and sent it again to the other instance meanwhile
                    answers = [[], []]
                    both = [threading.Thread(target=lambda k=k: answers.__setitem__(
                        k, push(i + k, token, client_id, ops, "push"))) for k in (0, 1)]
                    for th in both:
                        th.start()
                    for th in both:
                        th.join()
                    answers = answers[0] + answers[1]
                else:
                    answers = push(i, token, client_id, ops, "push")
                with lock:
                    push_answers[client_id] += answers
                for a in answers:
                    if any(x["op_id"] == 1 and x["status"] == "applied" for x in a["results"]):
                        with lock:
                            wins[t["id"]].add(user_id)

        def reader(i):
            start.wait()
            while not stop.is_set():
                record(i, "pool", on(i).request("GET", "/api/v1/pool", techs[i][1]))
                record(i, "escalations", on(i).request("GET", "/api/v1/escalations?open=true", desk))
                time.sleep(0.2)

        threads = [threading.Thread(target=guarded(technician, problems, lock), args=(n,)) for n in range(len(techs))]
        readers = [threading.Thread(target=guarded(reader, problems, lock), args=(i,)) for i in (0, 1)]
        for th in threads + readers:
            th.start()
        load_started = time.monotonic()
        for th in threads:
            th.join()
        load_secs = time.monotonic() - load_started

        # the late retry: every retried batch once more, through the other instance than the first
        late_answers = []
        for client_id, ops, token, i, retried in pushes:
            if retried:
                answers = push(i + 1, token, client_id, ops, "late push")
                late_answers.append((client_id, answers[-1] if answers else None))

        # the unclaimed tickets escalate; both instances keep scanning a few more rounds
        deadline = max(unclaimed_created + CLAIM_TIMEOUT_SECS + 15, time.monotonic() + 5)
        ids = [t["id"] for t in unclaimed]
        while time.monotonic() < deadline:
            got = db.query("SELECT COUNT(DISTINCT ticket_id) FROM escalations WHERE kind = 'unclaimed' AND ticket_id IN ("
                           + ",".join(f"'{i}'" for i in ids) + ")")
            if int(got[0][0]) == len(ids):
                break
            time.sleep(0.2)
        time.sleep(3)
        stop.set()
        for th in readers:
            th.join()

        # every SMS delivered
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rows = db.query("SELECT status, COUNT(*) FROM sms_outbox GROUP BY status")
            if [r[0] for r in rows] == ["sent"]:
                break
            time.sleep(0.2)
        time.sleep(1)  # a few more delivery rounds on both instances: nothing may go out again

        # ---- winners
        claimed = Counter()
        claimed_by = {}
        for ticket_id, actor in db.query("SELECT ticket_id, actor_id FROM ticket_events WHERE event_type = 'claimed'"):
            claimed[ticket_id] += 1
            claimed_by[ticket_id] = actor
        assignees = {r[0]: (r[1], r[2]) for r in db.query("SELECT id, assignee_id, status FROM tickets")}
        double = [t for t, n in claimed.items() if n > 1]
        wrong_holder = [t for t, actor in claimed_by.items() if assignees[t][0] != actor]
        race_ids = {t["id"] for t in race}
        no_winner = [t for t in race_ids if claimed[t] != 1]
        answered_twice = {t: w for t, w in wins.items() if len(w) > 1}
        answered_wrong = [t for t, w in wins.items() if len(w) == 1 and next(iter(w)) != assignees[t][0]]
        for label, bad in [("tickets with two claimed events", double), ("claimed events not by the assignee", wrong_holder),
                           ("race tickets without exactly one claimed event", no_winner),
                           ("tickets where two technicians were told they won", answered_twice),
                           ("tickets whose told winner is not the assignee", answered_wrong)]:
            if bad:
                problems.append(f"{len(bad)} {label}: {list(bad)[:3]}")
        if any(claimed[t["id"]] for t in unclaimed):
            problems.append("an unclaimed ticket was claimed")

        # ---- sync
        dup_ops = db.query("SELECT client_id, op_id, COUNT(*) FROM sync_ops GROUP BY client_id, op_id HAVING COUNT(*) > 1")
        per_client = {r[0]: (int(r[1]), int(r[2])) for r in db.query(
            "SELECT c.client_id, c.last_op_id, COUNT(o.op_id) FROM sync_clients c "
            "LEFT JOIN sync_ops o ON o.client_id = c.client_id GROUP BY c.client_id, c.last_op_id")}
        op_status = Counter(r[0] for r in db.query("SELECT status FROM sync_ops"))
        if dup_ops:
            problems.append(f"sync ops recorded twice: {dup_ops[:3]}")
        for client_id, ops, *_ in pushes:
            if per_client.get(client_id) != (len(ops), len(ops)):
                problems.append(f"client {client_id}: (last_op_id, ops stored) = {per_client.get(client_id)}, "
                                f"{len(ops)} pushed")
        # every answer has a line per op it reached (a complete one: all 4); across the answers of
        # one client each op is applied or rejected once, and answered as a duplicate otherwise
        for client_id, answers in push_answers.items():
            for a in answers:
                reached = [x["op_id"] for x in a["results"]]
                if a.get("retry_from") is None and reached != [1, 2, 3, 4]:
                    problems.append(f"client {client_id}: an answer with lines for ops {reached}")
            decided = Counter(x["op_id"] for a in answers for x in a["results"] if x["status"] != "duplicate")
            if any(n != 1 for n in decided.values()) or len(decided) != 4:
                problems.append(f"client {client_id}: ops applied or rejected per op {dict(decided)}")
        for client_id, a in late_answers:
            if a is None or any(x["status"] != "duplicate" for x in a["results"]) or a["last_op_id"] != 4:
                problems.append(f"late resend of {client_id} answered {a}")
        lines_twice = db.query("SELECT id, COUNT(*) FROM material_lines GROUP BY id HAVING COUNT(*) > 1")
        applied_materials = int(db.query("SELECT COUNT(*) FROM sync_ops WHERE name = 'add_material' AND status = 'applied'")[0][0])
        material_lines = int(db.query("SELECT COUNT(*) FROM material_lines")[0][0])
        applied_notes = int(db.query("SELECT COUNT(*) FROM sync_ops WHERE name = 'add_note' AND status = 'applied'")[0][0])
        notes = int(db.query("SELECT COUNT(*) FROM ticket_notes")[0][0])
        if lines_twice or applied_materials != material_lines or applied_notes != notes:
            problems.append(f"materials {material_lines} for {applied_materials} applied adds, notes {notes} for "
                            f"{applied_notes} applied adds")

        # ---- escalations
        escalations = db.query("SELECT id, ticket_id, kind, dedupe_key FROM escalations")
        by_key = Counter(e[3] for e in escalations)
        by_ticket_kind = Counter((e[1], e[2]) for e in escalations)
        events = Counter(r[0] for r in db.query(
            "SELECT data::json->>'escalation_id' FROM ticket_events WHERE event_type = 'escalated'"))
        if any(n > 1 for n in by_key.values()) or any(n > 1 for n in by_ticket_kind.values()):
            problems.append(f"escalations recorded twice: {[k for k, n in by_ticket_kind.items() if n > 1][:3]}")
        for t in unclaimed:
            if by_ticket_kind[(t["id"], "unclaimed")] != 1:
                problems.append(f"unclaimed ticket {t['number']} has {by_ticket_kind[(t['id'], 'unclaimed')]} escalations")
        if sorted(events) != sorted(e[0] for e in escalations) or any(n != 1 for n in events.values()):
            problems.append(f"escalated events {sum(events.values())} for {len(escalations)} escalations")
        listed = []
        for s in servers:
            r = s.request("GET", "/api/v1/escalations", desk)
            listed.append(sorted(e["id"] for e in r.body["items"]) if r.status == 200 else r)
        if listed[0] != listed[1] or listed[0] != sorted(e[0] for e in escalations):
            counts = [len(x) if isinstance(x, list) else f"{x.status} {str(x.body)[:100]}" for x in listed]
            problems.append(f"the instances list different escalations: {counts[0]} / {counts[1]}, "
                            f"{len(escalations)} stored")
        kinds = Counter(e[2] for e in escalations)

        # ---- SMS
        outbox = db.query("SELECT id, status FROM sms_outbox")
        received, accepted, _ = gateway.snapshot()
        out_ids = {r[0] for r in outbox}
        twice = [i for i, n in accepted.items() if n > 1]
        missing = [i for i in out_ids if accepted[i] != 1]
        unknown = [i for i in accepted if i not in out_ids]
        unsent = [r for r in outbox if r[1] != "sent"]
        if twice or missing or unknown or unsent or len(outbox) != created or gateway.bad_signatures:
            problems.append(f"SMS: {len(outbox)} in the outbox for {created} tickets, {len(unsent)} not sent, "
                            f"{len(twice)} accepted twice, {len(missing)} not accepted once, {len(unknown)} unknown, "
                            f"{gateway.bad_signatures} bad signatures")

        for s, name in zip(servers, "AB"):
            if not s.alive():
                problems.append(f"instance {name} exited")

        # ---- deadlocks: each instance logs every one it met (and retried); PostgreSQL counts them
        logged = {}
        for s, name in zip(servers, "AB"):
            with open(s.log_path, errors="replace") as f:
                logged[name] = sum(line.count("deadlock detected") for line in f)
        pg_deadlocks = int(db.query("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")[0][0])
        if any(logged.values()) or pg_deadlocks:
            problems.append(f"deadlocks: {logged['A']} in A's log, {logged['B']} in B's, {pg_deadlocks} counted by PostgreSQL")

        lat = percentiles([x[3] for x in seen])
        per_instance = Counter("AB"[x[0]] for x in seen)
        errors = sum(1 for x in seen if x[2] is None or x[2] >= 500)
        http_claims = Counter(x[2] for x in seen if x[1] == "claim")
        push_statuses = Counter(x[2] for x in seen if x[1] in ("push", "late push"))
        print(f"load: {len(techs)} technicians, {len(race)} race tickets x {args.racers} racers, {len(unclaimed)} left "
              f"unclaimed, {load_secs:.1f}s; {len(seen)} requests (A {per_instance['A']}, B {per_instance['B']}), "
              f"{errors} 5xx/unanswered, p50 {lat['p50']:.0f} ms, p99 {lat['p99']:.0f} ms, max {lat['max']:.0f} ms")
        print(f"winners: {sum(1 for t in race_ids if claimed[t] == 1)}/{len(race)} race tickets with exactly one "
              f"claimed event, {len(double)} with two, {len(wrong_holder)} not by the assignee; HTTP claims "
              f"{dict(sorted(http_claims.items(), key=str))}, told winners per ticket max "
              f"{max((len(w) for w in wins.values()), default=0)}")
        print(f"sync: {len(pushes)} clients, {sum(push_statuses.values())} pushes answered "
              f"{dict(sorted(push_statuses.items(), key=str))} ({sum(1 for p in pushes if p[4])} batches sent to both "
              f"instances at once, then once more), {sum(op_status.values())} ops stored {dict(op_status)}, "
              f"{len(dup_ops)} twice; {len(retried_from)} answers stopped early (retry_from); {material_lines} material "
              f"lines, {notes} notes")
        print(f"deadlocks: A's log {logged['A']}, B's log {logged['B']}, PostgreSQL {pg_deadlocks}; logs in {workdir}")
        print(f"escalations: {len(escalations)} {dict(kinds)}, {sum(1 for n in by_key.values() if n > 1)} dedupe keys "
              f"twice; {sum(1 for t in unclaimed if by_ticket_kind[(t['id'], 'unclaimed')] == 1)}/{len(unclaimed)} "
              f"unclaimed tickets escalated once; {sum(events.values())} escalated events; both instances list "
              f"{len(listed[0]) if isinstance(listed[0], list) else listed[0]}")
        print(f"sms: {len(outbox)} messages for {created} tickets, stub received {sum(received.values())}, accepted "
              f"{sum(accepted.values())} ({len(twice)} twice, {len(missing)} missing, {len(unknown)} unknown)")
        return verdict(problems)
    except Exception as e:  # the run itself broke (an answer not as expected): FAIL with why
        problems.append(f"the run broke: {broke(e)}")
        return verdict(problems)
    finally:
        stop.set()
        for s in servers:
            s.kill()
        if gateway:
            gateway.close()
        if db:
            db.drop()


if __name__ == "__main__":
    run(main)
