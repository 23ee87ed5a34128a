# Signed-in targets for bench/run.sh (sourced by it): realmgate with a valid
# session cookie, and Apache with Debian's libapache2-mod-auth-openidc
# protecting the same upstream. Both sign in, once, against the same
# identity provider (the demo IdP, `examples/mock_idp.rs`), with curl; wrk
# then replays each one's session cookie.

IDP_PORT=$((BASE_PORT + 5))
REALMGATE_AUTH_PORT=$((BASE_PORT + 6))
REALMGATE_AUTH_ADMIN_PORT=$((BASE_PORT + 7))
APACHE_PORT=$((BASE_PORT + 8))
MOCK_IDP_BIN="$CARGO_TARGET_DIR/release/examples/mock_idp"
IDP_BASE="http://127.0.0.1:$IDP_PORT"
# The demo IdP's client (src/demo/idp.rs: DEMO_CLIENT_ID / DEMO_CLIENT_SECRET).
IDP_CLIENT_ID="5d1a3c7e-0000-4000-8000-00000000c001"
IDP_CLIENT_SECRET="demo-client-secret-not-for-production"
BENCH_USER="alice@contoso.example"

start_idp() {
  [ -n "${IDP_STARTED:-}" ] && return 0
  "$MOCK_IDP_BIN" "$IDP_PORT" >"$WORK/idp.out" 2>"$WORK/idp.log" &
  PIDS+=($!)
  wait_http "$IDP_BASE/contoso.example/v2.0/.well-known/openid-configuration"
  IDP_STARTED=1
}

# Signs in at the demo IdP: follows `start_url` to the IdP's authorize URL,
# picks BENCH_USER on its page, and brings the code back, keeping cookies in
# `jar`. Prints nothing; the jar holds the signed-in cookies.
sign_in_with_curl() {
  local start_url="$1" jar="$2" authorize callback landed
  authorize="$(curl -s -o /dev/null -c "$jar" -b "$jar" -w '%{redirect_url}' "$start_url")"
  case "$authorize" in
    "$IDP_BASE"/*) ;;
    *) echo "bench: $start_url did not redirect to the IdP (got '$authorize')" >&2; exit 1 ;;
  esac
  callback="$(curl -s -o /dev/null -w '%{redirect_url}' --data-urlencode "user=$BENCH_USER" "$authorize")"
  [ -n "$callback" ] || { echo "bench: the IdP did not redirect back after sign-in" >&2; exit 1; }
  landed="$(curl -s -o /dev/null -c "$jar" -b "$jar" -w '%{http_code}' "$callback")"
  [ "$landed" = 302 ] || { echo "bench: callback $callback answered $landed, not 302" >&2; exit 1; }
}

# The `Cookie:` header value for every cookie in a curl jar.
jar_cookie_header() {
  awk -F'\t' 'NF >= 7 && $1 !~ /^# / { printf "%s%s=%s", sep, $6, $7; sep = "; " }' "$1"
}

# --- target: realmgate, a protected route, a signed-in session ---
# Starts realmgate binary `bin` as `name` on `port` (admin on `admin`) and
# signs in once. Sets RUN_PID and RUN_COOKIE (the Cookie header to replay).
# Also used by the A/B target below.
run_realmgate_auth() {
  local bin="$1" name="$2" port="$3" admin="$4"
  start_idp
  cat >"$WORK/$name.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
[admin]
listen = "127.0.0.1:$admin"
[log]
level = "warn"
[session]
secret = "bench-only-secret-bench-only-secret-0123"
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
  RUST_LOG= "$bin" run --config "$WORK/$name.toml" 2>"$WORK/$name.log" &
  PIDS+=($!)
  RUN_PID=$!
  wait_http "http://127.0.0.1:$admin/readyz"
  sign_in_with_curl "http://127.0.0.1:$port/.auth/login/contoso" "$WORK/$name.jar"
  RUN_COOKIE="$(jar_cookie_header "$WORK/$name.jar")"
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $RUN_COOKIE" "http://127.0.0.1:$port/")" = 200 ] ||
    { echo "bench: the $name session cookie is not accepted" >&2; exit 1; }
}

start_realmgate_auth() {
  run_realmgate_auth "$REALMGATE_BIN" realmgate-auth "$REALMGATE_AUTH_PORT" "$REALMGATE_AUTH_ADMIN_PORT"
  REALMGATE_AUTH_PID=$RUN_PID
  REALMGATE_COOKIE=$RUN_COOKIE
}
pids_realmgate_auth() { echo "$REALMGATE_AUTH_PID"; }
url_realmgate_auth() { echo "http://127.0.0.1:$REALMGATE_AUTH_PORT/"; }
wrk_args_realmgate_auth() { printf '%s\n' -H "Cookie: $REALMGATE_COOKIE"; }

# --- A/B target: the same signed-in route served by another build ---
# (see realmgate_alt in run.sh)
start_realmgate_auth_alt() {
  run_realmgate_auth "$ALT_BIN" realmgate-auth-alt "$REALMGATE_AUTH_ALT_PORT" "$REALMGATE_AUTH_ALT_ADMIN_PORT"
  REALMGATE_AUTH_ALT_PID=$RUN_PID
  REALMGATE_AUTH_ALT_COOKIE=$RUN_COOKIE
}
pids_realmgate_auth_alt() { echo "$REALMGATE_AUTH_ALT_PID"; }
url_realmgate_auth_alt() { echo "http://127.0.0.1:$REALMGATE_AUTH_ALT_PORT/"; }
wrk_args_realmgate_auth_alt() { printf '%s\n' -H "Cookie: $REALMGATE_AUTH_ALT_COOKIE"; }

# --- target: Apache + mod_auth_openidc, the same upstream, a signed-in session ---
start_apache_oidc() {
  start_idp
  local dir="$WORK/apache" mods=/usr/lib/apache2/modules user_directive=""
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    user_directive="User www-data
Group www-data"
    chown www-data "$dir"
  fi
  cat >"$dir/httpd.conf" <<EOF
ServerRoot "$dir"
ServerName 127.0.0.1
Listen 127.0.0.1:$APACHE_PORT
PidFile "$dir/httpd.pid"
ErrorLog "$dir/error.log"
LogLevel warn
DefaultRuntimeDir "$dir"
$user_directive
LoadModule mpm_event_module $mods/mod_mpm_event.so
LoadModule authn_core_module $mods/mod_authn_core.so
LoadModule authz_core_module $mods/mod_authz_core.so
LoadModule authz_user_module $mods/mod_authz_user.so
LoadModule proxy_module $mods/mod_proxy.so
LoadModule proxy_http_module $mods/mod_proxy_http.so
LoadModule auth_openidc_module $mods/mod_auth_openidc.so
# As many workers as wrk has connections, like nginx's and realmgate's defaults.
StartServers 2
ServerLimit 4
ThreadsPerChild 64
MaxRequestWorkers 256
KeepAlive On
MaxKeepAliveRequests 0
OIDCProviderMetadataURL $IDP_BASE/contoso.example/v2.0/.well-known/openid-configuration
OIDCClientID $IDP_CLIENT_ID
OIDCClientSecret $IDP_CLIENT_SECRET
OIDCRedirectURI http://127.0.0.1:$APACHE_PORT/redirect_uri
OIDCCryptoPassphrase bench-only-passphrase-0123456789
OIDCScope "openid profile email"
OIDCPKCEMethod S256
OIDCCookieSameSite On
<Location />
  AuthType openid-connect
  Require valid-user
</Location>
ProxyPass /redirect_uri !
ProxyPass / http://127.0.0.1:$UPSTREAM_PORT/ keepalive=On
EOF
  apache2 -f "$dir/httpd.conf" -DFOREGROUND &
  PIDS+=($!)
  APACHE_PID=$!
  local i
  for i in $(seq 1 200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$APACHE_PORT/")" = 302 ] && break
    sleep 0.1
  done
  sign_in_with_curl "http://127.0.0.1:$APACHE_PORT/" "$WORK/apache.jar"
  APACHE_COOKIE="$(jar_cookie_header "$WORK/apache.jar")"
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $APACHE_COOKIE" "$(url_apache_oidc)")" = 200 ] ||
    { echo "bench: the mod_auth_openidc session cookie is not accepted (see $dir/error.log)" >&2; cat "$dir/error.log" >&2; exit 1; }
}
# The parent and its worker processes.
pids_apache_oidc() { echo "$APACHE_PID"; pgrep -P "$APACHE_PID" || true; }
url_apache_oidc() { echo "http://127.0.0.1:$APACHE_PORT/"; }
wrk_args_apache_oidc() { printf '%s\n' -H "Cookie: $APACHE_COOKIE"; }
