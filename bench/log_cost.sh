#!/usr/bin/env bash
# CPU instructions per request of realmgate's access log, counted by
# callgrind (valgrind): steady where timings are not (a loaded machine).
# For each binary: a public route to a small upstream, access log off
# (level "warn"), on in text, on in JSON; REQUESTS keep-alive requests
# (h2load --h1, 4 connections) after a warm-up, counted between a zero and
# a dump of callgrind's counters (every thread: the proxy threads and the
# log writer thread). Kernel time (the writer's write system calls) is not
# in these counts; bench/run.sh's CPU per request has it.
#
#   bench/log_cost.sh                          # the release build (built first)
#   bench/log_cost.sh target/release/realmgate /tmp/realmgate-before   # A/B, as given
#   REQUESTS=20000 bench/log_cost.sh
#
# Needs valgrind, nginx (the upstream), h2load (nghttp2-client), curl.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
REQUESTS="${REQUESTS:-5000}"
BASE_PORT="${BASE_PORT:-19080}"
UPSTREAM_PORT=$((BASE_PORT + 1))
PORT=$((BASE_PORT + 2))
ADMIN_PORT=$((BASE_PORT + 3))

missing=()
for tool in valgrind callgrind_control nginx h2load curl; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "bench/log_cost.sh: missing: ${missing[*]} (apt-get install -y valgrind nginx nghttp2-client curl)" >&2
  exit 2
fi

bins=("$@")
if [ $# -eq 0 ]; then
  (cd "$ROOT" && cargo build --release --quiet --bin realmgate)
  bins=("$CARGO_TARGET_DIR/release/realmgate")
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
  for i in $(seq 1 600); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$url" 2>/dev/null)" = 200 ]; then return 0; fi
    sleep 0.2
  done
  echo "bench/log_cost.sh: $url did not answer 200 within 120 s" >&2
  exit 1
}

mkdir -p "$WORK/upstream/logs"
cat >"$WORK/upstream/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/upstream/nginx.pid;
error_log $WORK/upstream/logs/error.log warn;
events { worker_connections 1024; }
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

# Sets RESULT: the instructions per request of binary $1 with log level $2, format $3.
# (Not in a subshell: the PID it starts stays known to `cleanup`.)
count() {
  local bin="$1" level="$2" format="$3" pid out dump ir
  out="$WORK/cg.out"
  rm -f "$out"*
  cat >"$WORK/rg.toml" <<EOF
[server]
listen = "127.0.0.1:$PORT"
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
[log]
level = "$level"
format = "$format"
[session]
secret = "bench-only-secret-bench-only-secret-0123"
[[route]]
name = "bench"
hosts = ["127.0.0.1"]
upstream = "http://127.0.0.1:$UPSTREAM_PORT"
public = ["/"]
EOF
  RUST_LOG= valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$bin" run --config "$WORK/rg.toml" 2>"$WORK/rg.log" >/dev/null &
  pid=$!
  PIDS+=("$pid")
  wait_http "http://127.0.0.1:$PORT/"
  h2load --h1 -n 500 -c 4 -H "User-Agent: log-cost/1" "http://127.0.0.1:$PORT/" >/dev/null
  sleep 2
  callgrind_control -z "$pid" >/dev/null 2>&1
  h2load --h1 -n "$REQUESTS" -c 4 -H "User-Agent: log-cost/1" "http://127.0.0.1:$PORT/" >"$WORK/h2load.txt"
  grep -q "$REQUESTS succeeded" "$WORK/h2load.txt" || { cat "$WORK/h2load.txt" >&2; exit 1; }
  # Idle: the proxy threads hand their batches to the writer thread, which writes them.
  sleep 2
  callgrind_control -d "$pid" >/dev/null 2>&1
  sleep 1
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  dump="$(ls -t "$out".* 2>/dev/null | head -1)"
  ir="$(awk '/^(summary|totals):/ { print $2; exit }' "$dump")"
  RESULT="$(awk -v ir="$ir" -v n="$REQUESTS" 'BEGIN { printf "%.0f", ir / n }')"
}

printf "%-50s %12s %12s %12s %10s %10s\n" binary "log off" "text" "json" "text cost" "json cost"
for bin in "${bins[@]}"; do
  count "$bin" warn text; off=$RESULT
  count "$bin" info text; text=$RESULT
  count "$bin" info json; json=$RESULT
  printf "%-50s %12s %12s %12s %10s %10s\n" "$bin" "$off" "$text" "$json" $((text - off)) $((json - off))
done
echo "(instructions per request, all threads; $REQUESTS requests, 4 keep-alive connections)"
