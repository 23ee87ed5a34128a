#!/usr/bin/env bash
# Throughput and latency of realmgate (a public route, and a signed-in session)
# against nginx as a plain reverse proxy and Apache with mod_auth_openidc,
# all in front of the same upstream, on one machine, in one run (SPEC 7).
#
#   bench/run.sh                  # 3 interleaved rounds of 10 s per target
#   ROUNDS=5 DURATION=20s bench/run.sh
#   TARGETS="nginx realmgate" bench/run.sh
#   ALT_BIN=/tmp/realmgate-before TARGETS="realmgate realmgate_alt realmgate_auth realmgate_auth_alt" bench/run.sh
#                                 # A/B: this build against another one, side by side
#
# Installs nothing: it says what is missing. Needs wrk, nginx, cargo, curl.
# Everything listens on 127.0.0.1; every process started here is stopped on exit.
#
# Adding a target (e.g. an authenticated session, Apache mod_auth_openidc):
# write four functions and add the name to TARGETS:
#   start_<name>      start it (background; append its PID to PIDS), wait until it answers
#   url_<name>        print the URL wrk should load
#   wrk_args_<name>   print extra wrk arguments, one per line (e.g. -H and a
#                     "Cookie: realmgate=..." header for a signed-in session); may print nothing
#   pids_<name>       print the PIDs whose CPU time counts for the target (all its processes)
#   load_<name>       optional: run another load generator for the given duration and print
#                     wrk's "Requests/sec:", "50%", "99%" and "N requests in" lines (h2load)
#
# Besides req/s and latency it reports CPU microseconds per request (user +
# system time of the target's processes / requests served): on a shared or
# noisy machine that figure is far steadier than req/s.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
TARGETS="${TARGETS:-nginx nginx_cookie realmgate realmgate_auth apache_oidc hyper_floor}"
BASE_PORT="${BASE_PORT:-18080}"
UPSTREAM_PORT=$((BASE_PORT + 1))
NGINX_PORT=$((BASE_PORT + 2))
REALMGATE_PORT=$((BASE_PORT + 3))
REALMGATE_ADMIN_PORT=$((BASE_PORT + 4))
HYPER_FLOOR_PORT=$((BASE_PORT + 9))
# A/B targets (realmgate_alt, realmgate_auth_alt): the same routes served by
# another realmgate build, ALT_BIN.
REALMGATE_ALT_PORT=$((BASE_PORT + 14))
REALMGATE_ALT_ADMIN_PORT=$((BASE_PORT + 15))
REALMGATE_AUTH_ALT_PORT=$((BASE_PORT + 16))
REALMGATE_AUTH_ALT_ADMIN_PORT=$((BASE_PORT + 17))
ALT_BIN="${ALT_BIN:-}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
REALMGATE_BIN="$CARGO_TARGET_DIR/release/realmgate"

missing=()
for tool in wrk nginx cargo curl apache2 openssl; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "bench/run.sh: missing: ${missing[*]}" >&2
  echo "  on Debian/Ubuntu: apt-get update && apt-get install -y wrk nginx curl apache2 libapache2-mod-auth-openidc (cargo: https://rustup.rs)" >&2
  exit 2
fi

case " $TARGETS " in
  *_alt\ *)
    if [ ! -x "$ALT_BIN" ]; then
      echo "bench/run.sh: the *_alt targets need ALT_BIN, the path of another realmgate binary" >&2
      exit 2
    fi
    ;;
esac

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# Polls `url` until it answers 200 (bounded: 20 s).
wait_http() {
  local url="$1" i
  for i in $(seq 1 200); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$url" 2>/dev/null)" = 200 ]; then return 0; fi
    sleep 0.1
  done
  echo "bench/run.sh: $url did not answer 200 within 20 s" >&2
  exit 1
}

# Starts nginx with a config body (inside `http {}`) in its own prefix.
start_nginx_with() {
  local name="$1" workers="$2" body="$3"
  mkdir -p "$WORK/$name/logs"
  cat >"$WORK/$name/nginx.conf" <<EOF
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
EOF
  nginx -p "$WORK/$name" -c "$WORK/$name/nginx.conf" &
  PIDS+=($!)
  LAST_PID=$!
}

# --- the upstream: nginx answering a small static response (the fairest, fastest origin) ---
start_upstream() {
  start_nginx_with upstream 1 "
  server {
    listen 127.0.0.1:$UPSTREAM_PORT;
    location / { default_type text/plain; return 200 'hello from the upstream, a small response body\n'; }
  }"
  wait_http "http://127.0.0.1:$UPSTREAM_PORT/"
}

# --- target: nginx as a plain reverse proxy with a keep-alive upstream pool ---
start_nginx() {
  start_nginx_with proxy auto "
  upstream app { server 127.0.0.1:$UPSTREAM_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
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
  NGINX_PROXY_PID=$LAST_PID
  wait_http "$(url_nginx)"
}
pids_nginx() { echo "$NGINX_PROXY_PID"; pgrep -P "$NGINX_PROXY_PID" || true; }
url_nginx() { echo "http://127.0.0.1:$NGINX_PORT/"; }
wrk_args_nginx() { :; }

# --- target: the same nginx, sent the very request realmgate_auth gets ---
# A browser's signed-in request carries its session cookie; nginx passes
# it on to the upstream. Same name and value length as realmgate's cookie
# (nginx does not read it), so both proxies get the same bytes in.
start_nginx_cookie() { [ -n "${NGINX_PROXY_PID:-}" ] || start_nginx; }
pids_nginx_cookie() { pids_nginx; }
url_nginx_cookie() { url_nginx; }
wrk_args_nginx_cookie() { printf '%s\n' -H "Cookie: realmgate=$(printf 'A%.0s' $(seq 86))"; }

# --- target: realmgate, a public route to the same upstream ---
# Starts realmgate binary `bin` as `name` on `port` (admin on `admin`); sets
# RUN_PID. Also used by the A/B target below.
run_realmgate() {
  local bin="$1" name="$2" port="$3" admin="$4"
  cat >"$WORK/$name.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
[admin]
listen = "127.0.0.1:$admin"
[log]
level = "warn"          # no access log line, like nginx's access_log off above
[session]
secret = "bench-only-secret-bench-only-secret-0123"
[[route]]
name = "bench"
hosts = ["127.0.0.1"]
upstream = "http://127.0.0.1:$UPSTREAM_PORT"
public = ["/"]
EOF
  RUST_LOG= "$bin" run --config "$WORK/$name.toml" 2>"$WORK/$name.log" &
  PIDS+=($!)
  RUN_PID=$!
  wait_http "http://127.0.0.1:$port/"
}

start_realmgate() {
  run_realmgate "$REALMGATE_BIN" realmgate "$REALMGATE_PORT" "$REALMGATE_ADMIN_PORT"
  REALMGATE_PID=$RUN_PID
}
pids_realmgate() { echo "$REALMGATE_PID"; }
url_realmgate() { echo "http://127.0.0.1:$REALMGATE_PORT/"; }
wrk_args_realmgate() { :; }

# --- A/B target: the same public route served by another build ---
# Build the other version, copy its binary aside, then e.g.
#   ALT_BIN=/tmp/realmgate-before TARGETS="realmgate realmgate_alt" ROUNDS=4 bench/run.sh
# Both run in one run, alternating, so the machine's drift cancels out.
start_realmgate_alt() {
  run_realmgate "$ALT_BIN" realmgate-alt "$REALMGATE_ALT_PORT" "$REALMGATE_ALT_ADMIN_PORT"
  REALMGATE_ALT_PID=$RUN_PID
}
pids_realmgate_alt() { echo "$REALMGATE_ALT_PID"; }
url_realmgate_alt() { echo "http://127.0.0.1:$REALMGATE_ALT_PORT/"; }
wrk_args_realmgate_alt() { :; }

# --- reference target: the least a hyper-based proxy does (examples/hyper_floor.rs:
# no routing, auth, header rewriting or timeouts), with as many threads as
# realmgate's default. Not a product: it shows which part of realmgate's cost
# is the HTTP library's and which is realmgate's own.
start_hyper_floor() {
  "$CARGO_TARGET_DIR/release/examples/hyper_floor" "127.0.0.1:$HYPER_FLOOR_PORT" "127.0.0.1:$UPSTREAM_PORT" \
    2>"$WORK/hyper_floor.log" &
  PIDS+=($!)
  HYPER_FLOOR_PID=$!
  wait_http "$(url_hyper_floor)"
}
pids_hyper_floor() { echo "$HYPER_FLOOR_PID"; }
url_hyper_floor() { echo "http://127.0.0.1:$HYPER_FLOOR_PORT/"; }
wrk_args_hyper_floor() { :; }

# Converts wrk latency ("850.00us", "1.23ms", "1.01s") to milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else { printf "%s", v } }'
}

# CPU clock ticks (user + system, all threads) used so far by the given PIDs,
# then the system (kernel) part alone: "total system".
cpu_ticks() {
  local pid total=0 sys=0 u s
  for pid in "$@"; do
    read -r u s < <(awk '{ print $14, $15 }' "/proc/$pid/stat" 2>/dev/null || echo "0 0")
    total=$((total + u + s))
    sys=$((sys + s))
  done
  echo "$total $sys"
}

# Runs wrk against one target; prints
# "rps p50_ms p99_ms cpu_us_per_request kernel_us_per_request".
measure() {
  local name="$1" duration="$2" out args=() pids t0 t1 k0 k1
  mapfile -t args < <("wrk_args_$name")
  mapfile -t pids < <("pids_$name")
  read -r t0 k0 < <(cpu_ticks "${pids[@]}")
  if declare -F "load_$name" >/dev/null; then
    # Another load generator (h2load), printing what is read below.
    out="$("load_$name" "$duration")"
  else
    out="$(wrk -c "$CONNECTIONS" -t "$THREADS" -d "$duration" --latency "${args[@]}" "$("url_$name")")"
  fi
  read -r t1 k1 < <(cpu_ticks "${pids[@]}")
  echo "$out" >>"$WORK/wrk-$name.txt"
  local rps p50 p99 errors
  rps="$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")"
  p50="$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")"
  p99="$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")"
  errors="$(awk '/Non-2xx or 3xx responses:/ { print $NF } /Socket errors:/ { print "socket-errors" }' <<<"$out")"
  if [ -n "$errors" ]; then
    echo "bench/run.sh: $name had errors: $errors" >&2
    grep -E "Non-2xx|Socket errors" <<<"$out" >&2
  fi
  local requests cpu kernel
  requests="$(awk '/requests in/ { print $1 }' <<<"$out")"
  per_request() {
    awk -v d="$1" -v r="$requests" -v hz="$(getconf CLK_TCK)" \
      'BEGIN { if (r > 0) printf "%.1f", d * 1e6 / hz / r; else print "nan" }'
  }
  cpu="$(per_request $((t1 - t0)))"
  kernel="$(per_request $((k1 - k0)))"
  echo "$rps $p50 $p99 $cpu $kernel"
}

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# Signed-in targets: realmgate with a session cookie, Apache mod_auth_openidc.
# shellcheck source=bench/auth_targets.sh
source "$ROOT/bench/auth_targets.sh"
# Production conditions (issue 23): access logs on, TLS, HTTP/2, handshakes, one thread.
# shellcheck source=bench/prod_targets.sh
source "$ROOT/bench/prod_targets.sh"

echo "== building realmgate (release)"
(cd "$ROOT" && cargo build --release --quiet --bin realmgate --example mock_idp --example hyper_floor)

echo "== starting the upstream and the targets ($TARGETS)"
start_upstream
read -r -a targets <<<"$TARGETS"
for t in "${targets[@]}"; do "start_$t"; done

echo "== warm-up (2 s each)"
for t in "${targets[@]}"; do measure "$t" 2s >/dev/null; done

declare -A RESULTS ROUND_RPS
n=${#targets[@]}
for ((round = 0; round < ROUNDS; round++)); do
  # Rotate the order every round so no target always runs first (or hot).
  for ((i = 0; i < n; i++)); do
    t="${targets[$(((i + round) % n))]}"
    read -r rps p50 p99 cpu kernel < <(measure "$t" "$DURATION")
    printf "round %d  %-12s %10s req/s  p50 %8s ms  p99 %8s ms  cpu %6s us/req (kernel %s)\n" \
      $((round + 1)) "$t" "$rps" "$p50" "$p99" "$cpu" "$kernel"
    RESULTS[$t]+="$rps $p50 $p99 $cpu $kernel"$'\n'
    ROUND_RPS[$t,$round]="$rps"
  done
done

echo
echo "== medians of $ROUNDS rounds (wrk -c$CONNECTIONS -t$THREADS -d$DURATION, keep-alive, GET /)"
printf "%-12s %12s %10s %10s %12s %12s\n" target "req/s" "p50 ms" "p99 ms" "cpu us/req" "of it kernel"
declare -A MEDIAN_RPS MEDIAN_CPU
for t in "${targets[@]}"; do
  rps="$(awk 'NF { print $1 }' <<<"${RESULTS[$t]}" | median)"
  p50="$(awk 'NF { print $2 }' <<<"${RESULTS[$t]}" | median)"
  p99="$(awk 'NF { print $3 }' <<<"${RESULTS[$t]}" | median)"
  cpu="$(awk 'NF { print $4 }' <<<"${RESULTS[$t]}" | median)"
  kernel="$(awk 'NF { print $5 }' <<<"${RESULTS[$t]}" | median)"
  MEDIAN_RPS[$t]="$rps"
  MEDIAN_CPU[$t]="$cpu"
  printf "%-12s %12s %10s %10s %12s %12s\n" "$t" "$rps" "$p50" "$p99" "$cpu" "$kernel"
done
# Prints target t's throughput and CPU against baseline b.
ratio() {
  local t="$1" b="$2" per_round
  # Ratios within a round compare runs that were seconds apart, so they
  # cancel most of the drift of a shared machine; their median is the headline.
  per_round="$(for ((round = 0; round < ROUNDS; round++)); do
    awk -v a="${ROUND_RPS[$t,$round]}" -v b="${ROUND_RPS[$b,$round]}" 'BEGIN { printf "%.3f\n", a / b }'
  done)"
  printf "ratio %s/%s throughput: median of per-round ratios %.2f (rounds: %s); of medians %.2f\n" \
    "$t" "$b" "$(median <<<"$per_round")" "$(tr '\n' ' ' <<<"$per_round" | sed 's/ $//')" \
    "$(awk -v a="${MEDIAN_RPS[$t]}" -v b="${MEDIAN_RPS[$b]}" 'BEGIN { print a / b }')"
  awk -v a="${MEDIAN_CPU[$t]}" -v b="${MEDIAN_CPU[$b]}" -v t="$t" -v base="$b" \
    'BEGIN { printf "ratio %s/%s CPU per request: %.2f\n", t, base, a / b }'
}
if [ -n "${MEDIAN_RPS[nginx]:-}" ]; then
  for t in "${targets[@]}"; do
    [ "$t" = nginx ] || ratio "$t" nginx
  done
fi
# The signed-in request against nginx proxying that same request.
if [ -n "${MEDIAN_RPS[nginx_cookie]:-}" ] && [ -n "${MEDIAN_RPS[realmgate_auth]:-}" ]; then
  ratio realmgate_auth nginx_cookie
fi
# Production-condition targets (bench/prod_targets.sh) against their nginx.
for pair in $PROD_PAIRS; do
  if [ -n "${MEDIAN_RPS[${pair%%:*}]:-}" ] && [ -n "${MEDIAN_RPS[${pair#*:}]:-}" ]; then
    ratio "${pair#*:}" "${pair%%:*}"
  fi
done
