#!/usr/bin/env bash
# Instructions per signed-in request with many sessions (issue 23 item 2),
# counted by callgrind: steady on a loaded machine, where timings are not.
# One realmgate (a bench-sessions build, see bench/sessions.sh) with one
# proxy thread runs under valgrind with SESSIONS sessions in its store;
# wrk sends a random one of their cookies per request. Counting starts
# after a warm-up that reads every session at least once on average, and
# covers the proxy thread and every other thread of the process.
#
#   BIN=/tmp/realmgate-a bench/sessions_callgrind.sh          # memory store
#   STORE=redis BIN=/tmp/realmgate-b bench/sessions_callgrind.sh
#   BIN=... ANNOTATE=1 bench/sessions_callgrind.sh            # + top functions
#   STORE=redis SESSIONS=1500 BIN=... bench/sessions_callgrind.sh  # realistic miss mix
#
# Redis store: under valgrind realmgate serves ~50x fewer requests per
# second than natively, so with many sessions nearly every request misses
# the local cache (5 s TTL), where at ~30,000 req/s over 100,000 sessions
# about a third do. The run reports `redis_reads_per_request` (GETEX calls
# over requests, from redis-server's command stats): pick SESSIONS (or
# REDIS_CACHE_TTL, at most 60s) so it is near the mix you want to count.
#
# Needs valgrind, wrk, nginx, curl (and redis-server, redis-cli for
# STORE=redis). Listens on 127.0.0.1 only; stops what it started, by PID.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${BIN:?BIN must name a realmgate binary built with --features bench-sessions}"
SESSIONS="${SESSIONS:-20000}"
STORE="${STORE:-memory}"
WARMUP="${WARMUP:-20s}"
DURATION="${DURATION:-20s}"
BASE_PORT="${BASE_PORT:-18780}"
UPSTREAM_PORT=$((BASE_PORT + 1))
PORT=$((BASE_PORT + 2))
REDIS_PORT=$((BASE_PORT + 4))
LUA="$ROOT/bench/lua/random_cookie.lua"

for tool in valgrind callgrind_control wrk nginx curl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "bench/sessions_callgrind.sh: missing $tool (apt-get install -y valgrind wrk nginx curl)" >&2; exit 2; }
done

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

mkdir -p "$WORK/up/logs"
cat >"$WORK/up/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/up/nginx.pid;
error_log $WORK/up/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/up/body; proxy_temp_path $WORK/up/proxy; fastcgi_temp_path $WORK/up/fcgi;
  uwsgi_temp_path $WORK/up/uwsgi; scgi_temp_path $WORK/up/scgi;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$UPSTREAM_PORT; location / { default_type text/plain; return 200 'hello from the upstream, a small response body\n'; } }
}
CONF
nginx -p "$WORK/up" -c "$WORK/up/nginx.conf" &
PIDS+=($!)

store_lines=""
if [ "$STORE" = redis ]; then
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
  PIDS+=($!)
  for i in $(seq 1 100); do [ "$(redis-cli -p "$REDIS_PORT" PING 2>/dev/null)" = PONG ] && break; sleep 0.1; done
  store_lines="store = \"redis\"
redis_url = \"redis://127.0.0.1:$REDIS_PORT/0\"
${REDIS_CACHE_TTL:+redis_cache_ttl = \"$REDIS_CACHE_TTL\"}"
fi
cat >"$WORK/rg.toml" <<CONF
[server]
listen = "127.0.0.1:$PORT"
workers = 1
[admin]
listen = "127.0.0.1:$((PORT + 1))"
[log]
level = "warn"
[session]
secret = "bench-only-secret-bench-only-secret-0123"
memory_max_entries = $((SESSIONS * 2 + 1000))
$store_lines
[[connection]]
name = "contoso"
type = "entra"
tenant = "contoso.example"
authority_host = "http://127.0.0.1:9"
client_id = "5d1a3c7e-0000-4000-8000-00000000c001"
client_secret = "bench-only-client-secret"
home_realm_domains = ["contoso.example"]
[[route]]
name = "bench"
hosts = ["127.0.0.1"]
upstream = "http://127.0.0.1:$UPSTREAM_PORT"
headers = "forwarded"
CONF
RG_BENCH_SESSIONS="$SESSIONS" RG_BENCH_COOKIES="$WORK/cookies" RUST_LOG= \
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/cg.out" \
  "$BIN" run --config "$WORK/rg.toml" 2>"$WORK/rg.log" &
RG_PID=$!
PIDS+=($RG_PID)
for i in $(seq 1 3000); do
  [ -s "$WORK/cookies" ] && break
  kill -0 "$RG_PID" 2>/dev/null || { cat "$WORK/rg.log" >&2; exit 1; }
  sleep 0.1
done
one="$(head -n1 "$WORK/cookies")"
for i in $(seq 1 600); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $one" "http://127.0.0.1:$PORT/")" = 200 ] && break
  sleep 0.2
done
COOKIES="$WORK/cookies" wrk -c 8 -t 1 -d "$WARMUP" -s "$LUA" "http://127.0.0.1:$PORT/" >/dev/null
callgrind_control -i on "$RG_PID" >/dev/null &
# A command reaches callgrind when the process runs: wake it up.
curl -s -o /dev/null -H "Cookie: $one" "http://127.0.0.1:$PORT/" || true
wait $!
getex_calls() {
  [ "$STORE" = redis ] || { echo 0; return; }
  redis-cli -p "$REDIS_PORT" INFO commandstats | tr -d '\r' | awk -F'[=,]' '/^cmdstat_getex:/ { print $2; f=1 } END { if (!f) print 0 }'
}
getex_before="$(getex_calls)"
out="$(COOKIES="$WORK/cookies" wrk -c 8 -t 1 -d "$DURATION" -s "$LUA" "http://127.0.0.1:$PORT/")"
getex_after="$(getex_calls)"
# The count is written when the process ends (SIGTERM: graceful stop).
kill "$RG_PID"
wait "$RG_PID" 2>/dev/null || true
requests="$(awk '/requests in/ { print $1 }' <<<"$out")"
grep -qE "Non-2xx|Socket errors" <<<"$out" && { echo "bench/sessions_callgrind.sh: errors:" >&2; grep -E "Non-2xx|Socket errors" <<<"$out" >&2; }
total=0
for f in "$WORK"/cg.out*; do
  n="$(awk '/^(summary|totals):/ { print $2; exit }' "$f")"
  total=$((total + ${n:-0}))
done
reads=""
if [ "$STORE" = redis ]; then
  reads=" redis_reads_per_request=$(awk -v g=$((getex_after - getex_before)) -v r="${requests:-0}" 'BEGIN { printf "%.3f", (r > 0 ? g / r : 0) }')"
fi
echo "store=$STORE sessions=$SESSIONS requests=$requests instructions=$total per_request=$((total / (requests > 0 ? requests : 1)))$reads"
if [ -n "${ANNOTATE:-}" ]; then
  for f in "$WORK"/cg.out*; do
    n="$(awk '/^(summary|totals):/ { print $2; exit }' "$f")"
    [ "${n:-0}" -gt 0 ] && callgrind_annotate --inclusive=yes "$f" 2>/dev/null | head -n "${ANNOTATE_LINES:-80}"
    [ "${n:-0}" -gt 0 ] && callgrind_annotate "$f" 2>/dev/null | head -n "${ANNOTATE_LINES:-80}"
  done
fi
