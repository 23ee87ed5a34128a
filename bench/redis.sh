#!/usr/bin/env bash
# realmgate with the Redis session store against realmgate with the memory
# store, side by side in one run: the same upstream, a signed-in session
# cookie, wrk with keep-alive connections, interleaved rounds (SPEC 7: "with
# Redis sessions, a cached session costs no Redis round trip"; issue 6:
# throughput >= 0.95x the memory store).
#
#   bench/redis.sh                      # 3 rounds of 10 s per target
#   ROUNDS=5 DURATION=20s BASE_PORT=19080 bench/redis.sh
#
# Around every Redis round it reads `INFO commandstats` and prints how many
# commands Redis executed (the subscriber's health PINGs and our INFO left
# out) for how many requests. With the default redis_cache_ttl = "5s", a
# hot session is read from Redis once per 5 s (one GETEX), every other
# request is answered from the local cache.
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
BASE_PORT="${BASE_PORT:-18280}"
UPSTREAM_PORT=$((BASE_PORT + 1))
REDIS_GW_PORT=$((BASE_PORT + 10))
REDIS_GW_ADMIN_PORT=$((BASE_PORT + 11))
REDIS_PORT=$((BASE_PORT + 12))
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
REALMGATE_BIN="$CARGO_TARGET_DIR/release/realmgate"

missing=()
for tool in wrk nginx redis-server redis-cli cargo curl; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "bench/redis.sh: missing: ${missing[*]}" >&2
  echo "  on Debian/Ubuntu: apt-get update && apt-get install -y wrk nginx redis-server curl (cargo: https://rustup.rs)" >&2
  exit 2
fi

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
  for i in $(seq 1 200); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$url" 2>/dev/null)" = 200 ]; then return 0; fi
    sleep 0.1
  done
  echo "bench/redis.sh: $url did not answer 200 within 20 s" >&2
  exit 1
}

# The upstream: nginx answering a small static response.
start_upstream() {
  mkdir -p "$WORK/upstream/logs"
  cat >"$WORK/upstream/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/upstream/nginx.pid;
error_log $WORK/upstream/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/upstream/body;
  proxy_temp_path $WORK/upstream/proxy;
  fastcgi_temp_path $WORK/upstream/fastcgi;
  uwsgi_temp_path $WORK/upstream/uwsgi;
  scgi_temp_path $WORK/upstream/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$UPSTREAM_PORT;
    location / { default_type text/plain; return 200 'hello from the upstream, a small response body\n'; }
  }
}
EOF
  nginx -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$UPSTREAM_PORT/"
}

# The demo IdP, curl sign-in, and the memory-store target `realmgate_auth`
# (start_realmgate_auth, url_/wrk_args_/pids_realmgate_auth).
# shellcheck source=bench/auth_targets.sh
source "$ROOT/bench/auth_targets.sh"

start_redis() {
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$WORK" >"$WORK/redis.log" 2>&1 &
  PIDS+=($!)
  local i
  for i in $(seq 1 100); do
    [ "$(redis-cli -p "$REDIS_PORT" PING 2>/dev/null)" = PONG ] && return 0
    sleep 0.1
  done
  echo "bench/redis.sh: redis-server did not answer on port $REDIS_PORT" >&2
  exit 1
}

# --- target: realmgate with the Redis store, same route and IdP ---
start_realmgate_redis() {
  cat >"$WORK/realmgate-redis.toml" <<EOF
[server]
listen = "127.0.0.1:$REDIS_GW_PORT"
[admin]
listen = "127.0.0.1:$REDIS_GW_ADMIN_PORT"
[log]
level = "warn"
[session]
secret = "bench-only-secret-bench-only-secret-0123"
store = "redis"
redis_url = "redis://127.0.0.1:$REDIS_PORT/0"
[[connection]]
name = "contoso"
type = "entra"
tenant = "contoso.example"
authority_host = "$IDP_BASE"
client_id = "$IDP_CLIENT_ID"
client_secret = "$IDP_CLIENT_SECRET"
home_realm_domains = ["contoso.example"]
[[route]]
name = "bench"
hosts = ["127.0.0.1"]
upstream = "http://127.0.0.1:$UPSTREAM_PORT"
headers = "forwarded"
EOF
  RUST_LOG= "$REALMGATE_BIN" run --config "$WORK/realmgate-redis.toml" 2>"$WORK/realmgate-redis.log" &
  PIDS+=($!)
  REALMGATE_REDIS_PID=$!
  wait_http "http://127.0.0.1:$REDIS_GW_ADMIN_PORT/readyz"
  sign_in_with_curl "http://127.0.0.1:$REDIS_GW_PORT/.auth/login/contoso" "$WORK/redis.jar"
  REDIS_COOKIE="$(jar_cookie_header "$WORK/redis.jar")"
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $REDIS_COOKIE" "$(url_realmgate_redis)")" = 200 ] ||
    { echo "bench/redis.sh: the Redis-store session cookie is not accepted" >&2; exit 1; }
}
pids_realmgate_redis() { echo "$REALMGATE_REDIS_PID"; }
url_realmgate_redis() { echo "http://127.0.0.1:$REDIS_GW_PORT/"; }
wrk_args_realmgate_redis() { printf '%s\n' -H "Cookie: $REDIS_COOKIE"; }

# Commands Redis executed so far, without PING (subscriber health checks)
# and INFO (ours).
redis_commands() {
  redis-cli -p "$REDIS_PORT" INFO commandstats |
    awk -F'[:,=]' '/^cmdstat_/ && $1 != "cmdstat_ping" && $1 != "cmdstat_info" { n += $3 } END { print n + 0 }'
}

to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else { printf "%s", v } }'
}

# Runs wrk against one target; prints "rps p50_ms p99_ms requests".
measure() {
  local name="$1" duration="$2" out args=()
  mapfile -t args < <("wrk_args_$name")
  out="$(wrk -c "$CONNECTIONS" -t "$THREADS" -d "$duration" --latency "${args[@]}" "$("url_$name")")"
  if grep -qE "Non-2xx|Socket errors" <<<"$out"; then
    echo "bench/redis.sh: $name had errors:" >&2
    grep -E "Non-2xx|Socket errors" <<<"$out" >&2
  fi
  echo "$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out") \
$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")") \
$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")") \
$(awk '/requests in/ { print $1 }' <<<"$out")"
}

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "== building realmgate (release)"
(cd "$ROOT" && cargo build --release --quiet --bin realmgate --example mock_idp)

echo "== starting the upstream, the IdP, redis-server and both gateways"
start_upstream
start_redis
start_realmgate_auth
start_realmgate_redis

echo "== warm-up (2 s each)"
measure realmgate_auth 2s >/dev/null
measure realmgate_redis 2s >/dev/null

targets=(realmgate_auth realmgate_redis)
declare -A RESULTS ROUND_RPS
total_cmds=0
total_reqs=0
for ((round = 0; round < ROUNDS; round++)); do
  for ((i = 0; i < 2; i++)); do
    t="${targets[$(((i + round) % 2))]}"
    before="$(redis_commands)"
    read -r rps p50 p99 reqs < <(measure "$t" "$DURATION")
    after="$(redis_commands)"
    extra=""
    if [ "$t" = realmgate_redis ]; then
      cmds=$((after - before))
      total_cmds=$((total_cmds + cmds))
      total_reqs=$((total_reqs + reqs))
      extra="  redis commands: $cmds for $reqs requests"
    fi
    printf "round %d  %-16s %10s req/s  p50 %8s ms  p99 %8s ms%s\n" \
      $((round + 1)) "$t" "$rps" "$p50" "$p99" "$extra"
    RESULTS[$t]+="$rps $p50 $p99"$'\n'
    ROUND_RPS[$t,$round]="$rps"
  done
done

echo
echo "== medians of $ROUNDS rounds (wrk -c$CONNECTIONS -t$THREADS -d$DURATION, keep-alive, signed-in GET /)"
printf "%-16s %12s %10s %10s\n" target "req/s" "p50 ms" "p99 ms"
for t in "${targets[@]}"; do
  printf "%-16s %12s %10s %10s\n" "$t" \
    "$(awk 'NF { print $1 }' <<<"${RESULTS[$t]}" | median)" \
    "$(awk 'NF { print $2 }' <<<"${RESULTS[$t]}" | median)" \
    "$(awk 'NF { print $3 }' <<<"${RESULTS[$t]}" | median)"
done
per_round="$(for ((round = 0; round < ROUNDS; round++)); do
  awk -v a="${ROUND_RPS[realmgate_redis,$round]}" -v b="${ROUND_RPS[realmgate_auth,$round]}" 'BEGIN { printf "%.3f\n", a / b }'
done)"
printf "ratio redis/memory throughput: median of per-round ratios %.2f (rounds: %s; target >= 0.95)\n" \
  "$(median <<<"$per_round")" "$(tr '\n' ' ' <<<"$per_round" | sed 's/ $//')"
awk -v c="$total_cmds" -v r="$total_reqs" \
  'BEGIN { printf "redis commands during the Redis-store runs: %d for %d requests (%.6f per request)\n", c, r, (r > 0 ? c / r : 0) }'
