#!/usr/bin/env bash
# LDAP sign-ins per second through realmgate, and the latency realmgate adds
# over a direct bind (issue 19 "Measured"; docs/benchmarks.md "LDAP sign-in").
#
#   bench/ldap.sh                      # 10 s per measurement, concurrency 1 and 8
#   DURATION=20 CONCURRENCY="1 4 16" bench/ldap.sh
#
# Starts Debian's slapd on loopback (own config directory, mdb, a TLS
# certificate made here, a search account and one user with an {SSHA}
# password), a release build of realmgate with one `type = "ldap"`
# connection (search-then-bind, groups = "none"), and the load client
# examples/ldap_bench.rs (ldap3 over rustls, like realmgate):
#   - direct bind: new TLS connection + simple bind + unbind per operation;
#   - sign-in: GET /.auth/login/corp (form + token), POST (302 + session),
#     a fresh cookie jar per sign-in.
# Installs nothing: it says what is missing (apt-get install -y slapd ldap-utils openssl).
# Everything listens on 127.0.0.1; every process started here is stopped on exit (by PID).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DURATION="${DURATION:-10}"
CONCURRENCY="${CONCURRENCY:-1 8}"
BASE_PORT="${BASE_PORT:-18180}"
LDAPS_PORT=$((BASE_PORT))
GW_PORT=$((BASE_PORT + 1))
ADMIN_PORT=$((BASE_PORT + 2))
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$CARGO_TARGET_DIR/release/realmgate"
CLIENT="$CARGO_TARGET_DIR/release/examples/ldap_bench"

missing=()
for tool in /usr/sbin/slapd /usr/sbin/slapadd /usr/sbin/slappasswd openssl cargo; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "bench/ldap.sh: missing: ${missing[*]}" >&2
  echo "  on Debian/Ubuntu: apt-get update && apt-get install -y slapd ldap-utils openssl" >&2
  exit 2
fi

if [[ -z "${NO_BUILD:-}" ]]; then
  (cd "$ROOT" && cargo build --release --bin realmgate --example ldap_bench)
fi

DIR="$(mktemp -d)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$DIR"
}
trap cleanup EXIT

BASE="dc=corp,dc=test"
SVC_DN="cn=svc,ou=service,$BASE"
SVC_PW="svc-secret-$RANDOM$RANDOM"
USER_PW="correct horse battery"

openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=127.0.0.1" \
  -addext "subjectAltName=IP:127.0.0.1" -addext "basicConstraints=critical,CA:FALSE" \
  -keyout "$DIR/key.pem" -out "$DIR/cert.pem" 2>/dev/null
mkdir "$DIR/db"
cat >"$DIR/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $DIR/slapd.pid
TLSCertificateFile $DIR/cert.pem
TLSCertificateKeyFile $DIR/key.pem
database mdb
maxsize 10485760
suffix "$BASE"
rootdn "cn=admin,$BASE"
rootpw admin-$RANDOM$RANDOM
directory $DIR/db
access to attrs=userPassword by anonymous auth by * none
access to * by dn.exact="$SVC_DN" read by self read by * none
EOF
cat >"$DIR/data.ldif" <<EOF
dn: $BASE
objectClass: dcObject
objectClass: organization
o: corp
dc: corp

dn: ou=service,$BASE
objectClass: organizationalUnit
ou: service

dn: ou=people,$BASE
objectClass: organizationalUnit
ou: people

dn: $SVC_DN
objectClass: person
cn: svc
sn: svc
userPassword: $(slappasswd -s "$SVC_PW")

dn: uid=alice,ou=people,$BASE
objectClass: inetOrgPerson
uid: alice
cn: Alice
sn: Example
mail: alice@corp.test
displayName: Alice Example
userPassword: $(slappasswd -s "$USER_PW")
EOF
/usr/sbin/slapadd -f "$DIR/slapd.conf" -l "$DIR/data.ldif" >/dev/null 2>&1
/usr/sbin/slapd -f "$DIR/slapd.conf" -h "ldaps://127.0.0.1:$LDAPS_PORT/" -d 0 2>"$DIR/slapd.log" &
PIDS+=($!)

printf '%s' "$SVC_PW" >"$DIR/svc.pw"
cat >"$DIR/realmgate.toml" <<EOF
[server]
listen = "127.0.0.1:$GW_PORT"

[admin]
listen = "127.0.0.1:$ADMIN_PORT"

[session]
secret = "$(openssl rand -hex 32)"

[log]
level = "warn"

[[connection]]
name = "corp"
display_name = "Corp directory"
type = "ldap"
url = ["ldaps://127.0.0.1:$LDAPS_PORT"]
ca_file = "$DIR/cert.pem"
bind_dn = "$SVC_DN"
bind_password_file = "$DIR/svc.pw"
user_base = "ou=people,$BASE"
user_filter = "(&(objectClass=inetOrgPerson)(mail={login}))"
attributes = { user_id = "entryUUID", email = "mail", name = "displayName", username = "uid" }
groups = "none"
home_realm_domains = ["corp.test"]
trusted_email = true
timeout = "5s"
max_failed_logins = 1000

[[route]]
name = "app"
hosts = ["app.test"]
path_prefix = "/"
upstream = "http://127.0.0.1:9"
EOF
"$BIN" check --config "$DIR/realmgate.toml" >/dev/null
"$BIN" run --config "$DIR/realmgate.toml" 2>"$DIR/realmgate.log" &
PIDS+=($!)

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench/ldap.sh: nothing listens on 127.0.0.1:$1" >&2
  cat "$DIR"/*.log >&2
  exit 1
}
wait_port "$LDAPS_PORT"
wait_port "$GW_PORT"

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $(slapd -VV 2>&1 | head -1)"
# Warm-up: the search account's pooled connections, TLS session state.
"$CLIENT" signin "127.0.0.1:$GW_PORT" app.test corp alice@corp.test "$USER_PW" 2 2 >/dev/null
for c in $CONCURRENCY; do
  echo "--- concurrency $c, ${DURATION}s each"
  "$CLIENT" bind "ldaps://127.0.0.1:$LDAPS_PORT" "$DIR/cert.pem" "uid=alice,ou=people,$BASE" "$USER_PW" "$DURATION" "$c"
  "$CLIENT" signin "127.0.0.1:$GW_PORT" app.test corp alice@corp.test "$USER_PW" "$DURATION" "$c"
done
echo "after: load $(cut -d' ' -f1-3 /proc/loadavg)"
