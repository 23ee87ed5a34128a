#!/usr/bin/env bash
# SPEC 7: 10,000 idle keep-alive client connections cost under 200 MiB.
# Starts the release build with one public route, opens COUNT (default
# 10,000) connections with one request each, leaves them idle, and prints the
# gateway's resident memory before and after (examples/idle_connections.rs).
#
#   bench/idle.sh            # 10,000 connections
#   COUNT=20000 bench/idle.sh
#
# Needs an open-files limit above COUNT (per process) for the client and the gateway; it
# raises its own soft limit (the hard limit must allow it).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COUNT="${COUNT:-10000}"
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
echo "== $COUNT idle keep-alive connections"
"$CARGO_TARGET_DIR/release/examples/idle_connections" "$COUNT" "$CARGO_TARGET_DIR/release/realmgate"
