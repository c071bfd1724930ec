#!/usr/bin/env python3
"""Times the ticket search statement once per text of the bench's `search` scenario, with its
plan, on a SQLite database the bench kept (`--only search --keep-db`): the table in
docs/performance.md, "Ticket search in a site of 100,000 tickets".

Usage: scripts/search_plans.py /tmp/rd-bench-.../bench.db [--plus-site] [--common-scan] [--match]
--plus-site writes the site condition `+site_id` (off its index), as the server does since 27ef3d4
(`site_id || ''`); without it, the statement as it was before.
--common-scan first counts the text's rows in the search index, up to 2,000
(db::tickets::COMMON_MATCHES), and reads a text found that often row by row, newest first, as the
server does since the commit that added this flag; the count's time is included.
--match asks the FTS5 table with a phrase (`MATCH '"text"'`) instead of `LIKE '%text%'`, in the
count and in the search, as the server does since the commit that added this flag.
All three flags: the statements the server runs now.
Needs a Python whose sqlite3 has FTS5 with the trigram tokenizer (SQLite 3.34 or later).
"""
import sqlite3
import sys
import time

COMMON = 2000
db = sqlite3.connect(sys.argv[1])
site = db.execute("SELECT site_id FROM tickets GROUP BY site_id ORDER BY count(*) DESC LIMIT 1").fetchone()[0]
# (as typed, lowercased; its place key when it differs), as domain::place::search_terms makes them
texts = [("1502", None), ("漏水", None), ("地漏堵塞", None), ("12栋 6单元 1101", "12栋6单元1101"),
         ("13800050000", None), ("sr-20261203-033333", None)]


def timed(plain, key):
    """One search as the server makes it: (rows, ms, statement, its arguments)."""
    patterns = ["%" + plain + "%"] + (["%" + key + "%"] if key else [])
    # the statement db::tickets::list writes on SQLite: the FTS5 table from three characters on,
    # unless (--common-scan) the text is found in at least COMMON rows
    match = "--match" in sys.argv[2:]
    fts = "MATCH" if match else "LIKE"
    fts_args = ['"' + t.replace('"', '""') + '"' for t in [plain] + ([key] if key else [])] if match else patterns
    began = time.time()
    common = "--common-scan" in sys.argv[2:] and all(len(p) >= 5 for p in patterns) and any(
        db.execute(f"SELECT count(*) FROM (SELECT 1 FROM ticket_search WHERE search_text {fts} ? LIMIT ?)",
                   [a, COMMON]).fetchone()[0] >= COMMON for a in fts_args)
    args = patterns
    if all(len(p) >= 5 for p in patterns) and not common:
        union = " UNION ".join(f"SELECT rowid FROM ticket_search WHERE search_text {fts} ?" for _ in patterns)
        condition = f"tickets.rowid IN ({union})"
        args = fts_args
    else:
        condition = " OR ".join("search_text LIKE ?" for _ in patterns)
    site_column = "+site_id" if "--plus-site" in sys.argv[2:] else "site_id"
    sql = f"SELECT id FROM tickets WHERE {site_column} = ? AND ({condition}) ORDER BY created_at DESC, id DESC LIMIT 51"
    rows = db.execute(sql, [site] + args).fetchall()
    took = (time.time() - began) * 1000
    return rows, took, sql, [site] + args


for plain, key in texts:
    # the fastest of five runs: the machine may be busy with something else
    rows, took, sql, args = min((timed(plain, key) for _ in range(5)), key=lambda r: r[1])
    plan = [step[3] for step in db.execute("EXPLAIN QUERY PLAN " + sql, args).fetchall()]
    print(f"{plain}\t{len(rows)} rows\t{took:.1f} ms\t{'; '.join(plan)}")
