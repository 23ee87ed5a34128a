#!/usr/bin/env bash
# Many signed-in users, not one hot cookie (issue 23 item 2, SPEC 7): nginx
# as a plain reverse proxy, realmgate with the memory store and realmgate
# with the Redis store, side by side in one run, in front of the same
# upstream. Each realmgate starts with SESSIONS (default 100,000) distinct
# sessions in its store, and wrk sends a cookie picked at random among them
# with every request (bench/lua/random_cookie.lua); nginx gets the very same
# requests (it passes the cookie on).
#
#   bench/sessions.sh                       # 3 interleaved rounds of 10 s
#   SESSIONS=10000 ROUNDS=5 bench/sessions.sh
#   TARGETS="nginx realmgate_mem" bench/sessions.sh
#   BIN=/tmp/realmgate-after ALT_BIN=/tmp/realmgate-before TARGETS="nginx realmgate_mem realmgate_mem_alt" bench/sessions.sh
#   ALT_BIN=$BIN ALT_REDIS_CACHE_TTL=30s TARGETS="realmgate_mem realmgate_redis realmgate_redis_alt" bench/sessions.sh
#   LOGS=1 bench/sessions.sh                # access logs on in both (SPEC 7)
#
# LOGS=1: one access line per request in both, each to a file (nginx: the
# fields realmgate logs, 32 KiB buffer flushed every second, as
# bench/prod_targets.sh's nginx_log; realmgate: level "info", its text
# line on stderr, redirected to a file). Default 0: both off.
#
# The sessions are made by a bench build (cargo feature `bench-sessions`,
# src/session/bench_seed.rs): the store's own `put` writes them, with real
# cookie values under the configured secret; the product's build has no such
# path. Any other build given as ALT_BIN must have the feature too.
#
# Reports req/s, p50/p99 and CPU microseconds per request (user + system of
# the target's processes; for the Redis target, realmgate and redis-server
# both, and redis-server's part beside it); for a Redis target also the
# session reads that reached Redis (GETEX per request) and how many GETEX
# Redis received per read syscall.
#
# Installs nothing: it says what is missing. Needs wrk, nginx, redis-server,
# redis-cli, cargo, curl. Everything listens on 127.0.0.1; every process
# started here is stopped (by PID) on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
SESSIONS="${SESSIONS:-100000}"
LOGS="${LOGS:-0}"
TARGETS="${TARGETS:-nginx realmgate_mem realmgate_redis}"
# The Redis targets' redis_cache_ttl (empty: the product's default, 5 s);
# the *_alt target may differ, to compare two settings in one run.
REDIS_CACHE_TTL="${REDIS_CACHE_TTL:-}"
ALT_REDIS_CACHE_TTL="${ALT_REDIS_CACHE_TTL:-$REDIS_CACHE_TTL}"
BASE_PORT="${BASE_PORT:-18480}"
UPSTREAM_PORT=$((BASE_PORT + 1))
NGINX_PORT=$((BASE_PORT + 2))
MEM_PORT=$((BASE_PORT + 10))
REDIS_GW_PORT=$((BASE_PORT + 12))
REDIS_PORT=$((BASE_PORT + 14))
MEM_ALT_PORT=$((BASE_PORT + 16))
REDIS_ALT_PORT=$((BASE_PORT + 18))
ALT_BIN="${ALT_BIN:-}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${BIN:-$CARGO_TARGET_DIR/release/realmgate}"
LUA="$ROOT/bench/lua/random_cookie.lua"

missing=()
for tool in wrk nginx redis-server redis-cli cargo curl; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "bench/sessions.sh: missing: ${missing[*]}" >&2
  echo "  on Debian/Ubuntu: apt-get update && apt-get install -y wrk nginx redis-server curl (cargo: https://rustup.rs)" >&2
  exit 2
fi
case " $TARGETS " in
  *_alt\ *)
    [ -x "$ALT_BIN" ] || { echo "bench/sessions.sh: the *_alt targets need ALT_BIN (a bench-sessions build)" >&2; exit 2; } ;;
esac

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

wait_http() {
  local url="$1" i
  for i in $(seq 1 600); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$url" 2>/dev/null)" = 200 ]; then return 0; fi
    sleep 0.1
  done
  echo "bench/sessions.sh: $url did not answer 200 within 60 s" >&2
  exit 1
}

start_nginx_with() {
  local name="$1" workers="$2" body="$3"
  mkdir -p "$WORK/$name/logs"
  cat >"$WORK/$name/nginx.conf" <<CONF
worker_processes $workers;
daemon off;
pid $WORK/$name/nginx.pid;
error_log $WORK/$name/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/$name/body;
  proxy_temp_path $WORK/$name/proxy;
  fastcgi_temp_path $WORK/$name/fastcgi;
  uwsgi_temp_path $WORK/$name/uwsgi;
  scgi_temp_path $WORK/$name/scgi;
  keepalive_requests 1000000;
  $body
}
CONF
  nginx -p "$WORK/$name" -c "$WORK/$name/nginx.conf" &
  PIDS+=($!)
  LAST_PID=$!
}

start_upstream() {
  start_nginx_with upstream 1 "
  server {
    listen 127.0.0.1:$UPSTREAM_PORT;
    location / { default_type text/plain; return 200 'hello from the upstream, a small response body\n'; }
  }"
  wait_http "http://127.0.0.1:$UPSTREAM_PORT/"
}

# --- nginx: a plain reverse proxy, sent the same random cookies ---
start_nginx() {
  local log=""
  [ "$LOGS" = 1 ] && log="log_format bench '\$time_iso8601 \$remote_addr \"\$request_method\" \"\$host\" \"\$uri\" \$status \$body_bytes_sent \$request_time \$upstream_response_time \"\$request_id\" \"\$http_traceparent\" \"\$http_user_agent\"';"
  start_nginx_with proxy auto "
  $log
  upstream app { server 127.0.0.1:$UPSTREAM_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    $([ "$LOGS" = 1 ] && echo "access_log $WORK/proxy/logs/access.log bench buffer=32k flush=1s;")
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_buffering off;
    }
  }"
  NGINX_PID=$LAST_PID
  wait_http "http://127.0.0.1:$NGINX_PORT/"
}
pids_nginx() { echo "$NGINX_PID"; pgrep -P "$NGINX_PID" || true; }
url_nginx() { echo "http://127.0.0.1:$NGINX_PORT/"; }
# nginx does not read the cookie: any target's file gives it the same bytes.
cookies_nginx() { echo "${NGINX_COOKIES:-}"; }

start_redis() {
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$WORK" >"$WORK/redis.log" 2>&1 &
  PIDS+=($!)
  REDIS_PID=$!
  local i
  for i in $(seq 1 100); do
    [ "$(redis-cli -p "$REDIS_PORT" PING 2>/dev/null)" = PONG ] && return 0
    sleep 0.1
  done
  echo "bench/sessions.sh: redis-server did not answer on port $REDIS_PORT" >&2
  exit 1
}

# Starts realmgate `bin` as `name` on `port` (admin on port+1) with the
# store given by the `[session]` lines `store`, seeded with SESSIONS
# sessions. Sets RUN_PID; the cookies are in $WORK/$name.cookies.
run_realmgate() {
  local bin="$1" name="$2" port="$3" store="$4"
  cat >"$WORK/$name.toml" <<CONF
[server]
listen = "127.0.0.1:$port"
[admin]
listen = "127.0.0.1:$((port + 1))"
[log]
level = "$([ "$LOGS" = 1 ] && echo info || echo warn)"   # info: the access line on (LOGS=1), as nginx's
[session]
secret = "bench-only-secret-bench-only-secret-0123"
memory_max_entries = $((SESSIONS * 2 + 1000))
$store
[[connection]]
name = "contoso"
type = "entra"
tenant = "contoso.example"
authority_host = "http://127.0.0.1:9"   # never called: no sign-in, no refresh during the bench
client_id = "5d1a3c7e-0000-4000-8000-00000000c001"
client_secret = "bench-only-client-secret"
home_realm_domains = ["contoso.example"]
[[route]]
name = "bench"
hosts = ["127.0.0.1"]
upstream = "http://127.0.0.1:$UPSTREAM_PORT"
headers = "forwarded"
CONF
  RG_BENCH_SESSIONS="$SESSIONS" RG_BENCH_COOKIES="$WORK/$name.cookies" RUST_LOG= \
    "$bin" run --config "$WORK/$name.toml" 2>"$WORK/$name.log" &
  PIDS+=($!)
  RUN_PID=$!
  local i
  for i in $(seq 1 1200); do
    [ -s "$WORK/$name.cookies" ] && break
    kill -0 "$RUN_PID" 2>/dev/null || { echo "bench/sessions.sh: $name exited:" >&2; cat "$WORK/$name.log" >&2; exit 1; }
    sleep 0.1
  done
  local one
  one="$(head -n1 "$WORK/$name.cookies")"
  for i in $(seq 1 200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $one" "http://127.0.0.1:$port/")" = 200 ] && return 0
    sleep 0.1
  done
  echo "bench/sessions.sh: $name does not accept its seeded cookies" >&2
  cat "$WORK/$name.log" >&2
  exit 1
}

REDIS_STORE="store = \"redis\"
redis_url = \"redis://127.0.0.1:$REDIS_PORT/0\""

start_realmgate_mem() {
  run_realmgate "$BIN" mem "$MEM_PORT" ""
  MEM_PID=$RUN_PID
  NGINX_COOKIES="${NGINX_COOKIES:-$WORK/mem.cookies}"
}
pids_realmgate_mem() { echo "$MEM_PID"; }
url_realmgate_mem() { echo "http://127.0.0.1:$MEM_PORT/"; }
cookies_realmgate_mem() { echo "$WORK/mem.cookies"; }

start_realmgate_mem_alt() {
  run_realmgate "$ALT_BIN" mem-alt "$MEM_ALT_PORT" ""
  MEM_ALT_PID=$RUN_PID
}
pids_realmgate_mem_alt() { echo "$MEM_ALT_PID"; }
url_realmgate_mem_alt() { echo "http://127.0.0.1:$MEM_ALT_PORT/"; }
cookies_realmgate_mem_alt() { echo "$WORK/mem-alt.cookies"; }

cache_ttl_line() { [ -z "$1" ] || echo "redis_cache_ttl = \"$1\""; }

start_realmgate_redis() {
  [ -n "${REDIS_PID:-}" ] || start_redis
  run_realmgate "$BIN" redis "$REDIS_GW_PORT" "$REDIS_STORE
redis_key_prefix = \"a:\"
$(cache_ttl_line "$REDIS_CACHE_TTL")"
  REDIS_GW_PID=$RUN_PID
  NGINX_COOKIES="${NGINX_COOKIES:-$WORK/redis.cookies}"
}
pids_realmgate_redis() { echo "$REDIS_GW_PID"; echo "$REDIS_PID"; }
url_realmgate_redis() { echo "http://127.0.0.1:$REDIS_GW_PORT/"; }
cookies_realmgate_redis() { echo "$WORK/redis.cookies"; }

start_realmgate_redis_alt() {
  [ -n "${REDIS_PID:-}" ] || start_redis
  run_realmgate "$ALT_BIN" redis-alt "$REDIS_ALT_PORT" "$REDIS_STORE
redis_key_prefix = \"b:\"
$(cache_ttl_line "$ALT_REDIS_CACHE_TTL")"
  REDIS_ALT_PID=$RUN_PID
}
pids_realmgate_redis_alt() { echo "$REDIS_ALT_PID"; echo "$REDIS_PID"; }
url_realmgate_redis_alt() { echo "http://127.0.0.1:$REDIS_ALT_PORT/"; }
cookies_realmgate_redis_alt() { echo "$WORK/redis-alt.cookies"; }

to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else { printf "%s", v } }'
}

# User + system clock ticks of one PID.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# Counters of the bench's redis-server: "GETEX calls, read syscalls" (0 0
# without one). One target runs at a time, so a difference is that target's.
redis_counters() {
  if [ -z "${REDIS_PID:-}" ]; then echo "0 0"; return; fi
  local getex reads
  getex="$(redis-cli -p "$REDIS_PORT" INFO commandstats | tr -d '\r' | sed -n 's/^cmdstat_getex:calls=\([0-9]*\).*/\1/p')"
  reads="$(redis-cli -p "$REDIS_PORT" INFO stats | tr -d '\r' | sed -n 's/^total_reads_processed:\([0-9]*\)$/\1/p')"
  echo "${getex:-0} ${reads:-0}"
}

# Runs wrk against one target; prints "rps p50_ms p99_ms cpu_us_per_req
# redis_us_per_req getex_per_req getex_per_redis_read" (the last two: how
# many session reads reached Redis, and how many of them Redis got per read
# syscall, i.e. how well the connections pipeline them; 0 for a target
# without Redis).
measure() {
  local name="$1" duration="$2" out pids t0=0 t1=0 r0=0 r1=0 pid g0 g1 s0 s1
  mapfile -t pids < <("pids_$name")
  # Counters read outside the CPU window: the INFO commands are not the target's.
  read -r g0 s0 < <(redis_counters)
  for pid in "${pids[@]}"; do t0=$((t0 + $(ticks "$pid"))); done
  [ -n "${REDIS_PID:-}" ] && r0=$(ticks "$REDIS_PID")
  out="$(COOKIES="$("cookies_$name")" wrk -c "$CONNECTIONS" -t "$THREADS" -d "$duration" --latency -s "$LUA" "$("url_$name")")"
  for pid in "${pids[@]}"; do t1=$((t1 + $(ticks "$pid"))); done
  [ -n "${REDIS_PID:-}" ] && r1=$(ticks "$REDIS_PID")
  read -r g1 s1 < <(redis_counters)
  if grep -qE "Non-2xx|Socket errors" <<<"$out"; then
    echo "bench/sessions.sh: $name had errors:" >&2
    grep -E "Non-2xx|Socket errors" <<<"$out" >&2
  fi
  local requests hz
  requests="$(awk '/requests in/ { print $1 }' <<<"$out")"
  hz="$(getconf CLK_TCK)"
  case " ${pids[*]} " in *" ${REDIS_PID:-none} "*) ;; *) r0=0; r1=0; g0=0; g1=0; s0=0; s1=0 ;; esac
  echo "$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out") \
$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")") \
$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")") \
$(awk -v d=$((t1 - t0)) -v r="$requests" -v hz="$hz" 'BEGIN { printf "%.1f", (r > 0 ? d * 1e6 / hz / r : 0) }') \
$(awk -v d=$((r1 - r0)) -v r="$requests" -v hz="$hz" 'BEGIN { printf "%.1f", (r > 0 ? d * 1e6 / hz / r : 0) }') \
$(awk -v g=$((g1 - g0)) -v r="$requests" 'BEGIN { printf "%.2f", (r > 0 ? g / r : 0) }') \
$(awk -v g=$((g1 - g0)) -v s=$((s1 - s0)) 'BEGIN { printf "%.1f", (s > 0 ? g / s : 0) }')"
}

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

if [ "$BIN" = "$CARGO_TARGET_DIR/release/realmgate" ]; then
  echo "== building realmgate (release, feature bench-sessions)"
  (cd "$ROOT" && cargo build --release --quiet --features bench-sessions --bin realmgate)
fi

read -r -a targets <<<"$TARGETS"
echo "== starting the upstream and the targets ($TARGETS), $SESSIONS sessions each"
start_upstream
# realmgate first: nginx replays a realmgate target's cookie file.
for t in "${targets[@]}"; do [ "$t" = nginx ] || "start_$t"; done
for t in "${targets[@]}"; do [ "$t" = nginx ] && start_nginx; done
if [ -z "${NGINX_COOKIES:-}" ]; then
  # nginx alone: cookies of the same shape.
  NGINX_COOKIES="$WORK/nginx.cookies"
  for i in $(seq 1 1000); do printf 'realmgate=%s\n' "$(head -c 64 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '=')"; done >"$NGINX_COOKIES"
fi

echo "== warm-up (5 s each: every session read once)"
for t in "${targets[@]}"; do measure "$t" 5s >/dev/null; done

declare -A RESULTS ROUND_RPS
n=${#targets[@]}
for ((round = 0; round < ROUNDS; round++)); do
  for ((i = 0; i < n; i++)); do
    t="${targets[$(((i + round) % n))]}"
    read -r rps p50 p99 cpu rcpu getex batch < <(measure "$t" "$DURATION")
    printf "round %d  %-18s %10s req/s  p50 %8s ms  p99 %8s ms  cpu %6s us/req (redis-server %s; GETEX %s/req, %s per Redis read)\n" \
      $((round + 1)) "$t" "$rps" "$p50" "$p99" "$cpu" "$rcpu" "$getex" "$batch"
    RESULTS[$t]+="$rps $p50 $p99 $cpu $rcpu $getex"$'\n'
    ROUND_RPS[$t,$round]="$rps"
  done
done

echo
echo "== medians of $ROUNDS rounds (wrk -c$CONNECTIONS -t$THREADS -d$DURATION, keep-alive, $SESSIONS sessions, random cookie per request, access logs $([ "$LOGS" = 1 ] && echo on || echo off))"
printf "%-18s %12s %10s %10s %12s %14s %10s\n" target "req/s" "p50 ms" "p99 ms" "cpu us/req" "of it redis" "GETEX/req"
for t in "${targets[@]}"; do
  printf "%-18s %12s %10s %10s %12s %14s %10s\n" "$t" \
    "$(awk 'NF { print $1 }' <<<"${RESULTS[$t]}" | median)" \
    "$(awk 'NF { print $2 }' <<<"${RESULTS[$t]}" | median)" \
    "$(awk 'NF { print $3 }' <<<"${RESULTS[$t]}" | median)" \
    "$(awk 'NF { print $4 }' <<<"${RESULTS[$t]}" | median)" \
    "$(awk 'NF { print $5 }' <<<"${RESULTS[$t]}" | median)" \
    "$(awk 'NF { print $6 }' <<<"${RESULTS[$t]}" | median)"
done
ratio() {
  local t="$1" b="$2" per_round
  per_round="$(for ((round = 0; round < ROUNDS; round++)); do
    awk -v a="${ROUND_RPS[$t,$round]}" -v b="${ROUND_RPS[$b,$round]}" 'BEGIN { printf "%.3f\n", a / b }'
  done)"
  printf "ratio %s/%s throughput: median of per-round ratios %.2f (rounds: %s)\n" \
    "$t" "$b" "$(median <<<"$per_round")" "$(tr '\n' ' ' <<<"$per_round" | sed 's/ $//')"
}
for t in "${targets[@]}"; do
  [ "$t" != nginx ] && [ -n "${RESULTS[nginx]:-}" ] && ratio "$t" nginx
done
[ -n "${RESULTS[realmgate_redis]:-}" ] && [ -n "${RESULTS[realmgate_mem]:-}" ] && ratio realmgate_redis realmgate_mem
[ -n "${RESULTS[realmgate_mem_alt]:-}" ] && [ -n "${RESULTS[realmgate_mem]:-}" ] && ratio realmgate_mem realmgate_mem_alt
[ -n "${RESULTS[realmgate_redis_alt]:-}" ] && [ -n "${RESULTS[realmgate_redis]:-}" ] && ratio realmgate_redis realmgate_redis_alt
true
