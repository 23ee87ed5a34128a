# Production-condition targets for bench/run.sh (sourced by it; issue 23):
# access logs on in both proxies, TLS terminated on both (HTTP/1.1
# keep-alive, HTTP/2, new handshakes), and realmgate with one proxy thread.
# Each is the four functions bench/run.sh expects (start_, url_, wrk_args_,
# pids_), plus load_<name> where the load is not wrk's (h2load).
#
#   TARGETS="nginx_log realmgate_log realmgate_log_json nginx_cookie_log realmgate_auth_log" bench/run.sh
#   TARGETS="nginx_tls realmgate_tls nginx_h2 realmgate_h2 nginx_hs realmgate_hs" bench/run.sh
#   TARGETS="nginx nginx_w1 realmgate realmgate_w1 realmgate_auth realmgate_auth_w1" bench/run.sh
#
# Ports: BASE_PORT + 30 ... + 39.

NGINX_LOG_PORT=$((BASE_PORT + 30))
REALMGATE_LOG_PORT=$((BASE_PORT + 31))
REALMGATE_LOG_JSON_PORT=$((BASE_PORT + 32))
REALMGATE_AUTH_LOG_PORT=$((BASE_PORT + 33))
NGINX_TLS_PORT=$((BASE_PORT + 34))
REALMGATE_TLS_PORT=$((BASE_PORT + 35))
NGINX_W1_PORT=$((BASE_PORT + 36))
REALMGATE_W1_PORT=$((BASE_PORT + 37))
REALMGATE_AUTH_W1_PORT=$((BASE_PORT + 38))
# Admin ports of the realmgate targets above: + 40 ... + 49.
# Each realmgate target against its nginx (baseline:target), printed by run.sh.
PROD_PAIRS="nginx_log:realmgate_log nginx_log:realmgate_log_json nginx_cookie_log:realmgate_auth_log
  nginx_tls:realmgate_tls nginx_h2:realmgate_h2 nginx_hs:realmgate_hs
  nginx_w1:realmgate_w1 nginx_w1:realmgate_auth_w1"
H2_CONNECTIONS="${H2_CONNECTIONS:-16}"
H2_STREAMS="${H2_STREAMS:-4}"

# Runs `cmd...` with the REALMGATE_* overrides given as NAME=value words
# before `--` exported (config keys by environment, SPEC 3); not in a
# subshell, so the PIDs it starts are recorded.
with_env() {
  local assignments=() a
  while [ "$1" != -- ]; do assignments+=("$1"); shift; done
  shift
  for a in "${assignments[@]}"; do export "${a?}"; done
  "$@"
  for a in "${assignments[@]}"; do unset "${a%%=*}"; done
}

# The proxy configuration of the `nginx` target, for nginx servers with
# other listen or log lines.
nginx_proxy_location() {
  cat <<EOF2
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_buffering off;
    }
EOF2
}

# ---------------------------------------------------------------- access logs
# nginx with an access log of the fields realmgate logs (client, method,
# host, path, status, bytes, total and upstream time, request id, the
# client's traceparent, user agent), written to a file with a 32 KiB buffer
# flushed every second (realmgate batches its lines the same way). realmgate
# logs at level "info" (its access line on; text to stderr, a file here).
start_nginx_log() {
  [ -n "${NGINX_LOG_PID:-}" ] && return 0
  start_nginx_with proxy_log auto "
  log_format bench '\$time_iso8601 \$remote_addr \"\$request_method\" \"\$host\" \"\$uri\" \$status \$body_bytes_sent \$request_time \$upstream_response_time \"\$request_id\" \"\$http_traceparent\" \"\$http_user_agent\"';
  upstream app { server 127.0.0.1:$UPSTREAM_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$NGINX_LOG_PORT;
    access_log $WORK/proxy_log/logs/access.log bench buffer=32k flush=1s;
$(nginx_proxy_location)
  }"
  NGINX_LOG_PID=$LAST_PID
  wait_http "$(url_nginx_log)"
}
pids_nginx_log() { echo "$NGINX_LOG_PID"; pgrep -P "$NGINX_LOG_PID" || true; }
url_nginx_log() { echo "http://127.0.0.1:$NGINX_LOG_PORT/"; }
wrk_args_nginx_log() { :; }

# The same nginx, sent the signed-in request (see nginx_cookie).
start_nginx_cookie_log() { start_nginx_log; }
pids_nginx_cookie_log() { pids_nginx_log; }
url_nginx_cookie_log() { url_nginx_log; }
wrk_args_nginx_cookie_log() { wrk_args_nginx_cookie; }

start_realmgate_log() {
  with_env REALMGATE_LOG__LEVEL=info -- \
    run_realmgate "$REALMGATE_BIN" realmgate-log "$REALMGATE_LOG_PORT" $((BASE_PORT + 41))
  REALMGATE_LOG_PID=$RUN_PID
}
pids_realmgate_log() { echo "$REALMGATE_LOG_PID"; }
url_realmgate_log() { echo "http://127.0.0.1:$REALMGATE_LOG_PORT/"; }
wrk_args_realmgate_log() { :; }

start_realmgate_log_json() {
  with_env REALMGATE_LOG__LEVEL=info REALMGATE_LOG__FORMAT=json -- \
    run_realmgate "$REALMGATE_BIN" realmgate-log-json "$REALMGATE_LOG_JSON_PORT" $((BASE_PORT + 42))
  REALMGATE_LOG_JSON_PID=$RUN_PID
}
pids_realmgate_log_json() { echo "$REALMGATE_LOG_JSON_PID"; }
url_realmgate_log_json() { echo "http://127.0.0.1:$REALMGATE_LOG_JSON_PORT/"; }
wrk_args_realmgate_log_json() { :; }

start_realmgate_auth_log() {
  with_env REALMGATE_LOG__LEVEL=info -- \
    run_realmgate_auth "$REALMGATE_BIN" realmgate-auth-log "$REALMGATE_AUTH_LOG_PORT" $((BASE_PORT + 43))
  REALMGATE_AUTH_LOG_PID=$RUN_PID
  REALMGATE_AUTH_LOG_COOKIE=$RUN_COOKIE
}
pids_realmgate_auth_log() { echo "$REALMGATE_AUTH_LOG_PID"; }
url_realmgate_auth_log() { echo "http://127.0.0.1:$REALMGATE_AUTH_LOG_PORT/"; }
wrk_args_realmgate_auth_log() { printf '%s\n' -H "Cookie: $REALMGATE_AUTH_LOG_COOKIE"; }

# ------------------------------------------------------------------------ TLS
# One certificate for both (ECDSA P-256, for 127.0.0.1), TLS 1.2 and 1.3,
# each server's default cipher suites and groups, following the client's
# order (nginx: ssl_prefer_server_ciphers off, its default; rustls:
# ignore_client_order false, its default): with wrk, curl and h2load
# (OpenSSL clients) both settle on TLS 1.3, TLS_AES_256_GCM_SHA384, X25519.
# Both send TLS 1.3 session tickets (neither client resumes).
make_cert() {
  [ -f "$WORK/tls.crt" ] && return 0
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$WORK/tls.key" -out "$WORK/tls.crt" -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 2>/dev/null
}

wait_https() {
  local url="$1" i
  for i in $(seq 1 200); do
    if [ "$(curl -sk -o /dev/null -w '%{http_code}' "$url" 2>/dev/null)" = 200 ]; then return 0; fi
    sleep 0.1
  done
  echo "bench/run.sh: $url did not answer 200 within 20 s" >&2
  exit 1
}

start_nginx_tls() {
  [ -n "${NGINX_TLS_PID:-}" ] && return 0
  make_cert
  start_nginx_with proxy_tls auto "
  upstream app { server 127.0.0.1:$UPSTREAM_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$NGINX_TLS_PORT ssl http2;
    ssl_certificate $WORK/tls.crt;
    ssl_certificate_key $WORK/tls.key;
    ssl_protocols TLSv1.2 TLSv1.3;
$(nginx_proxy_location)
  }"
  NGINX_TLS_PID=$LAST_PID
  wait_https "$(url_nginx_tls)"
}
pids_nginx_tls() { echo "$NGINX_TLS_PID"; pgrep -P "$NGINX_TLS_PID" || true; }
url_nginx_tls() { echo "https://127.0.0.1:$NGINX_TLS_PORT/"; }
wrk_args_nginx_tls() { :; }

start_realmgate_tls() {
  [ -n "${REALMGATE_TLS_PID:-}" ] && return 0
  make_cert
  cat >"$WORK/realmgate-tls.toml" <<EOF2
[server]
listen = "127.0.0.1:$REALMGATE_TLS_PORT"
[server.tls]
cert = "$WORK/tls.crt"
key = "$WORK/tls.key"
[admin]
listen = "127.0.0.1:$((BASE_PORT + 44))"
[log]
level = "warn"          # access log off, like nginx_tls
[session]
secret = "bench-only-secret-bench-only-secret-0123"
[[route]]
name = "bench"
hosts = ["127.0.0.1"]
upstream = "http://127.0.0.1:$UPSTREAM_PORT"
public = ["/"]
EOF2
  RUST_LOG= "$REALMGATE_BIN" run --config "$WORK/realmgate-tls.toml" 2>"$WORK/realmgate-tls.log" &
  PIDS+=($!)
  REALMGATE_TLS_PID=$!
  wait_https "$(url_realmgate_tls)"
}
pids_realmgate_tls() { echo "$REALMGATE_TLS_PID"; }
url_realmgate_tls() { echo "https://127.0.0.1:$REALMGATE_TLS_PORT/"; }
wrk_args_realmgate_tls() { :; }

# HTTP/2 over TLS (ALPN h2): h2load, H2_CONNECTIONS x H2_STREAMS requests in
# flight (16 x 4 = wrk's 64). Prints what `measure` reads from wrk; h2load
# has no percentiles, so the p50 column holds its mean, the p99 its max.
h2load_as_wrk() {
  local url="$1" duration="${2%s}" out
  out="$(h2load -c "$H2_CONNECTIONS" -m "$H2_STREAMS" -t "$THREADS" -D "$duration" "$url" 2>&1)"
  awk '
    /^finished in/ { gsub(",", "", $4); rps = $4 }
    /^requests:/ { done = $8; failed = $10 + $12 }
    /^time for request:/ { mean = $6; max = $5 }
    /^status codes:/ { codes = $0 }
    END {
      printf "Requests/sec: %s\n", rps
      printf "    50%% %s\n    99%% %s\n", mean, max
      printf "  %s requests in %s\n", done, "h2load"
      if (failed > 0) printf "Non-2xx or 3xx responses: %d\n", failed
    }' <<<"$out"
}
start_nginx_h2() { start_nginx_tls; }
pids_nginx_h2() { pids_nginx_tls; }
url_nginx_h2() { url_nginx_tls; }
wrk_args_nginx_h2() { :; }
load_nginx_h2() { h2load_as_wrk "$(url_nginx_h2)" "$1"; }
start_realmgate_h2() { start_realmgate_tls; }
pids_realmgate_h2() { pids_realmgate_tls; }
url_realmgate_h2() { url_realmgate_tls; }
wrk_args_realmgate_h2() { :; }
load_realmgate_h2() { h2load_as_wrk "$(url_realmgate_h2)" "$1"; }

# New TLS handshakes: every request on a new connection (`Connection:
# close`; wrk reconnects and does not resume sessions), so requests/s is
# handshakes/s, each with one proxied request.
start_nginx_hs() { start_nginx_tls; }
pids_nginx_hs() { pids_nginx_tls; }
url_nginx_hs() { url_nginx_tls; }
wrk_args_nginx_hs() { printf '%s\n' -H "Connection: close"; }
start_realmgate_hs() { start_realmgate_tls; }
pids_realmgate_hs() { pids_realmgate_tls; }
url_realmgate_hs() { url_realmgate_tls; }
wrk_args_realmgate_hs() { printf '%s\n' -H "Connection: close"; }

# ------------------------------------------------------- one proxy thread
# nginx with one worker process and realmgate with one proxy thread
# (`server.workers = 1`); compare with `nginx`, `realmgate` and
# `realmgate_auth` (one per core: two here).
start_nginx_w1() {
  start_nginx_with proxy_w1 1 "
  upstream app { server 127.0.0.1:$UPSTREAM_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$NGINX_W1_PORT;
$(nginx_proxy_location)
  }"
  NGINX_W1_PID=$LAST_PID
  wait_http "$(url_nginx_w1)"
}
pids_nginx_w1() { echo "$NGINX_W1_PID"; pgrep -P "$NGINX_W1_PID" || true; }
url_nginx_w1() { echo "http://127.0.0.1:$NGINX_W1_PORT/"; }
wrk_args_nginx_w1() { :; }

start_realmgate_w1() {
  with_env REALMGATE_SERVER__WORKERS=1 -- \
    run_realmgate "$REALMGATE_BIN" realmgate-w1 "$REALMGATE_W1_PORT" $((BASE_PORT + 45))
  REALMGATE_W1_PID=$RUN_PID
}
pids_realmgate_w1() { echo "$REALMGATE_W1_PID"; }
url_realmgate_w1() { echo "http://127.0.0.1:$REALMGATE_W1_PORT/"; }
wrk_args_realmgate_w1() { :; }

start_realmgate_auth_w1() {
  with_env REALMGATE_SERVER__WORKERS=1 -- \
    run_realmgate_auth "$REALMGATE_BIN" realmgate-auth-w1 "$REALMGATE_AUTH_W1_PORT" $((BASE_PORT + 46))
  REALMGATE_AUTH_W1_PID=$RUN_PID
  REALMGATE_AUTH_W1_COOKIE=$RUN_COOKIE
}
pids_realmgate_auth_w1() { echo "$REALMGATE_AUTH_W1_PID"; }
url_realmgate_auth_w1() { echo "http://127.0.0.1:$REALMGATE_AUTH_W1_PORT/"; }
wrk_args_realmgate_auth_w1() { printf '%s\n' -H "Cookie: $REALMGATE_AUTH_W1_COOKIE"; }

case " $TARGETS " in
  *_h2\ *)
    command -v h2load >/dev/null 2>&1 || {
      echo "bench/run.sh: the *_h2 targets need h2load: apt-get install -y nghttp2-client" >&2
      exit 2
    }
    ;;
esac
