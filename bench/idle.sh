#!/usr/bin/env bash
# SPEC 7: 10,000 idle keep-alive client connections cost under 200 MiB.
# Starts the release build with one public route, opens COUNT (default
# 10,000) connections with one request each, leaves them idle, and prints the
# gateway's resident memory before and after (examples/idle_connections.rs).
#
#   bench/idle.sh            # 10,000 connections, plain and then TLS
#   COUNT=20000 bench/idle.sh
#   TLS=0 bench/idle.sh      # plain only (TLS=1: TLS only)
#
# With TLS the gateway terminates TLS 1.3 (rustls) and every connection has
# completed its handshake: the figure includes rustls's per-connection state.
#
# Needs an open-files limit above COUNT (per process) for the client and the gateway; it
# raises its own soft limit (the hard limit must allow it).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COUNT="${COUNT:-10000}"
TLS="${TLS:-both}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

want=$((COUNT + 1024))  # per process: the client and the gateway each hold COUNT sockets
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want" ]; then
  ulimit -n "$want" 2>/dev/null || {
    echo "bench/idle.sh: the open-files limit is $(ulimit -n) and cannot be raised to $want (hard limit $(ulimit -Hn)); run as a user allowed to, or with a smaller COUNT" >&2
    exit 1
  }
fi

echo "== building realmgate and the client (release)"
(cd "$ROOT" && cargo build --release --quiet --bin realmgate --example idle_connections)
status=0
if [ "$TLS" != 1 ]; then
  echo "== $COUNT idle keep-alive connections"
  IDLE_TLS=0 "$CARGO_TARGET_DIR/release/examples/idle_connections" "$COUNT" "$CARGO_TARGET_DIR/release/realmgate" || status=1
fi
if [ "$TLS" != 0 ]; then
  echo "== $COUNT idle keep-alive TLS connections"
  IDLE_TLS=1 "$CARGO_TARGET_DIR/release/examples/idle_connections" "$COUNT" "$CARGO_TARGET_DIR/release/realmgate" || status=1
fi
exit $status
