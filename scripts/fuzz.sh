#!/usr/bin/env bash
# Fuzzes the HTTP API with schemathesis against the committed openapi/openapi.json.
#
# Builds the debug binary, starts it on a fresh database (SQLite in a temporary folder, or a new
# PostgreSQL database dropped afterwards), seeds a site, a dispatcher, a technician and a few
# tickets over HTTP, then runs schemathesis twice: as the admin and as the technician. Stops the
# server and exits non-zero when a run found failures.
#
# Usage: scripts/fuzz.sh [--engine sqlite|postgres]
#
# Settings (environment):
#   FUZZ_ENGINE        sqlite (default) or postgres; --engine overrides it
#   FUZZ_PG            PostgreSQL server for --engine postgres, without a database name
#                      (postgres://postgres@127.0.0.1:5432); needs psql
#   FUZZ_PORT          listen port (18090)
#   FUZZ_MAX_EXAMPLES  test cases per operation and phase (25)
#   FUZZ_SEED          schemathesis seed, for a reproducible run (random)
#   FUZZ_VENV          virtualenv holding schemathesis; created when missing (target/fuzz-venv)
#   FUZZ_KEEP          1 keeps the temporary folder (database, server log, reports)
#
# scripts/fuzz_hooks.py makes each Idempotency-Key the fuzzer draws unique, so that a write is not
# refused for a key it drew before (422 idempotency_key_reused) instead of reaching its checks.
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE="${FUZZ_ENGINE:-sqlite}"
while [ $# -gt 0 ]; do
  case "$1" in
    --engine) ENGINE="${2:-}"; shift 2 ;;
    --engine=*) ENGINE="${1#--engine=}"; shift ;;
    *) echo "usage: $0 [--engine sqlite|postgres]" >&2; exit 2 ;;
  esac
done
case "$ENGINE" in
  sqlite | postgres) ;;
  *) echo "--engine is sqlite or postgres, not '$ENGINE'" >&2; exit 2 ;;
esac
PG="${FUZZ_PG:-postgres://postgres@127.0.0.1:5432}"
PG_DB=""

PORT="${FUZZ_PORT:-18090}"
BASE="http://127.0.0.1:${PORT}"
MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-25}"
TARGET="${CARGO_TARGET_DIR:-target}"
VENV="${FUZZ_VENV:-${TARGET}/fuzz-venv}"
ADMIN_PASSWORD="fuzz-admin-pass"
PASSWORD="fuzz-user-pass-1"
WORK="$(mktemp -d)"
SERVER_PID=""

cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ -n "$PG_DB" ]; then
    psql "$PG/postgres" -qXc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null || true
  fi
  if [ "${FUZZ_KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

echo "== schemathesis"
if [ ! -x "$VENV/bin/schemathesis" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet 'schemathesis>=4,<5'
fi
ST="$VENV/bin/schemathesis"
"$ST" --version

echo "== build"
cargo build
BIN="$TARGET/debug/repairdesk"

if [ "$ENGINE" = postgres ]; then
  PG_DB="rd_fuzz_$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  psql "$PG/postgres" -qXc "CREATE DATABASE $PG_DB" >/dev/null
  DB_URL="$PG/$PG_DB"
else
  DB_URL="sqlite://$WORK/rd.db"
fi

echo "== start the server on $ENGINE ($DB_URL), files in $WORK"
DATABASE_URL="$DB_URL" \
  REPAIRDESK_ADDR="127.0.0.1:${PORT}" \
  REPAIRDESK_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
  REPAIRDESK_JWT_SECRET="fuzz-secret-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
  REPAIRDESK_SMS_PROVIDER=log \
  "$BIN" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 50); do
  curl -fs "$BASE/readyz" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log"; exit 1; }
  sleep 0.2
done
curl -fs "$BASE/readyz" >/dev/null

# call METHOD PATH TOKEN [BODY]: prints the JSON answer, fails on a non-2xx status
call() {
  local args=(-fsS -X "$1" "$BASE$2" -H 'content-type: application/json')
  [ -n "$3" ] && args+=(-H "authorization: Bearer $3")
  [ $# -ge 4 ] && args+=(-d "$4")
  curl "${args[@]}"
}
login() { call POST /api/v1/auth/login "" "{\"username\":\"$1\",\"password\":\"$2\"}"; }

echo "== seed"
ADMIN_LOGIN="$(login admin "$ADMIN_PASSWORD")"
ADMIN="$(jq -r .access_token <<<"$ADMIN_LOGIN")"
SITE="$(call POST /api/v1/sites "$ADMIN" '{"code":"FZ","name":"Fuzz site","timezone":"Asia/Shanghai"}' | jq -r .id)"
user() {
  call POST /api/v1/users "$ADMIN" "$(jq -nc --arg u "$1" --arg r "$2" --arg p "$PASSWORD" --arg s "$SITE" \
    --argjson t "$3" '{username:$u,password:$p,display_name:$u,role:$r,site_ids:[$s],trades:$t}')" | jq -r .id
}
DESK_ID="$(user desk1 dispatcher '[]')"
TECH_ID="$(user tech1 technician '["water"]')"
DESK="$(login desk1 "$PASSWORD" | jq -r .access_token)"
TECH_REFRESH="$(login tech1 "$PASSWORD" | jq -r .refresh_token)"
ticket() {
  call POST /api/v1/tickets "$DESK" "$(jq -nc --arg s "$SITE" --arg c "$1" --arg a "$2" \
    '{site_id:$s,area:$a,location:"3-2-1201",category:$c,urgency:"normal",paid:false,
      description:"leaking pipe",reporter_name:"Wang",reporter_phone:"13812345678",
      resident_supplies_parts:false,channel:"phone"}')" | jq -r .id
}
ticket water in_home >/dev/null
ticket water public >/dev/null
ticket electric in_home >/dev/null
ASSIGNED="$(ticket water in_home)"
call POST "/api/v1/tickets/$ASSIGNED/assign" "$DESK" "{\"technician_id\":\"$TECH_ID\"}" >/dev/null
call POST /api/v1/sites/"$SITE"/materials "$ADMIN" \
  '{"name":"PPR pipe 20mm","unit":"m","default_price_cents":1200}' >/dev/null

# Random ids only reach "not found": point the path ids at seeded records (the assigned ticket,
# the site, and USER), so the fuzzer drives them through their handlers.
config() {
  cat <<TOML
[[operations]]
include-path-regex = "^/api/v1/tickets/"
parameters = { "path.id" = "$ASSIGNED" }

[[operations]]
include-path-regex = "^/api/v1/users/"
parameters = { "path.id" = "$1" }

[[operations]]
include-path-regex = "^/api/v1/sites/"
parameters = { "path.id" = "$SITE" }
TOML
}

# run NAME TOKEN USER: one schemathesis run with that caller's token
FAILED=0
run() {
  echo "== schemathesis as $1"
  local seed=()
  config "$3" >"$WORK/schemathesis-$1.toml"
  [ -n "${FUZZ_SEED:-}" ] && seed=(--seed "$FUZZ_SEED")
  SCHEMATHESIS_HOOKS="$PWD/scripts/fuzz_hooks.py" \
    "$ST" --config-file "$WORK/schemathesis-$1.toml" run openapi/openapi.json \
    --url "$BASE" \
    --header "Authorization: Bearer $2" \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "$MAX_EXAMPLES" \
    --exclude-path-regex '/stream$' \
    --request-timeout 10 \
    --generation-database "$WORK/examples-$1" \
    --no-color \
    --report junit --report-dir "$WORK/report-$1" \
    "${seed[@]}" || FAILED=1
}
# the admin may deactivate the user it fuzzes: the dispatcher, not the technician fuzzed next
run admin "$ADMIN" "$DESK_ID"
# access tokens last 15 minutes and login may be throttled by the first run: refresh instead
TECH="$(call POST /api/v1/auth/refresh "" "{\"refresh_token\":\"$TECH_REFRESH\"}" | jq -r .access_token)"
run technician "$TECH" "$TECH_ID"

if grep -q 'panicked' "$WORK/server.log"; then
  echo "the server panicked:"; grep -A3 'panicked' "$WORK/server.log"; FAILED=1
fi
if [ "$FAILED" != 0 ]; then
  FUZZ_KEEP=1
  echo "schemathesis found failures; reports and server log in $WORK"
fi
exit "$FAILED"
