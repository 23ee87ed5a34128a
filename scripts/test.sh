#!/usr/bin/env bash
# Runs every test tier of realmgate, installing what the tiers need when it is missing.
#
#   scripts/test.sh [ARGS...]     ARGS go to `cargo test` (e.g. a test name filter)
#
# Tiers (all run by `cargo test`, which is the one test runner):
#   1. unit tests beside the code and hermetic integration tests (in-process fake IdP,
#      upstream and gateway on 127.0.0.1);
#   2. real third-party software started by the tests on loopback and stopped by PID:
#      an OpenID provider (npm oidc-provider, tests/node/provider.mjs), Redis, nginx,
#      Caddy, HAProxy, slapd, Samba's AD DC; a SAML 2.0 / WS-Federation IdP (npm samlp
#      and wsfed under Express, tests/node/saml-idp-server.mjs);
#   3. a real browser (Debian chromium driven by playwright-core,
#      tests/node/browser-login.mjs, tests/node/saml-browser.mjs) signing in through
#      the gateway.
# A tier whose tool is missing fails with a message saying what to install; nothing is
# skipped. Before the tiers: the node tools' own self-test, rustfmt, clippy,
# cargo deny (advisories offline from ../shared/advisory-db, bans, licences, sources) and
# cargo machete (no declared-but-unused dependency). After
# them: every cargo-fuzz target for FUZZ_SECONDS (default 30) each (scripts/fuzz.sh).
#
# Needs root or sudo for apt-get the first time. No system service is started, and
# none that this script's apt-get installs stays enabled at boot (caddy would take
# port 80): the tests run their own instances on 127.0.0.1. What it installed is
# listed in target/test-sh-installed.txt (apt-get remove them to undo). The benchmark
# tools (wrk, apache2 + mod_auth_openidc) are not installed here: bench/ says what
# it needs.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Colour only on a terminal: CI logs stay plain text.
if [[ -t 1 && -z "${CI:-}" ]]; then
  export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-always}"
else
  export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
fi

section() {
  printf '\n==> %s\n' "$*"
}

die() {
  printf 'scripts/test.sh: %s\n' "$*" >&2
  exit 1
}

# --- 1. Debian packages -------------------------------------------------------------
# nginx, caddy: reverse proxies the tests put in front of (forward-auth); redis-server: the
# shared session store; chromium: the browser tier; nodejs/npm: the node tools;
# haproxy, systemd (systemd-analyze): check the examples in deploy/ (tests/it/deploy.rs);
# xmlsec1: the reference XML signature verifier the SAML differential test compares with.
# slapd, ldap-utils: the real directory of the LDAP tier (tests/it/ldap/slapd.rs).
# prometheus: its promtool checks deploy/monitoring's alert rules (tests/it/monitoring.rs).
# samba-ad-dc, samba-ad-provision, faketime: the Active Directory tier (tests/it/ldap/samba.rs;
# Samba's AD DC, started by the test in a network namespace of its own). samba-ad-provision
# holds the AD schema `samba-tool domain provision` reads; samba-ad-dc only recommends it, and
# recommends are not installed here.
APT_PACKAGES=(nginx redis-server chromium caddy haproxy systemd xmlsec1 slapd ldap-utils samba-ad-dc samba-ad-provision faketime prometheus)

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

section "System packages"
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi
if ((${#missing[@]} > 0)); then
  echo "installing: ${missing[*]}"
  SUDO=()
  if [[ "$(id -u)" -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "missing packages (${missing[*]}) and not root, and no sudo: run as root, or install them with apt-get"
    SUDO=(sudo)
  fi
  # Packages must not start their system services (ports 80, 6379, ...): install a
  # policy-rc.d that forbids it, unless the machine already has one.
  policy=/usr/sbin/policy-rc.d
  added_policy=""
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
    "${SUDO[@]}" chmod 755 "$policy"
    added_policy=1
  fi
  # Units enabled at boot before, to disable only what this install enables.
  wants() {
    find /etc/systemd/system -path '*.wants/*' \( -name '*.service' -o -name '*.socket' \) 2>/dev/null | sort
  }
  wants_before="$(wants)"
  status=0
  "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 update -q || status=$?
  if ((status == 0)); then
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q \
      --no-install-recommends "${missing[@]}" || status=$?
  fi
  if [[ -n "$added_policy" ]]; then
    "${SUDO[@]}" rm -f "$policy"
  fi
  # Samba's packages enable their services at boot: the tests start their own DC.
  if [[ " ${missing[*]} " == *" samba-ad-dc "* ]]; then
    for svc in samba-ad-dc smbd nmbd winbind; do
      "${SUDO[@]}" systemctl disable --quiet "$svc" 2>/dev/null || true
      "${SUDO[@]}" update-rc.d "$svc" disable >/dev/null 2>&1 || true
    done
  fi
  # Leave the machine as it was apart from the packages: what the install enabled
  # at boot (caddy, haproxy, redis-server, nginx, slapd...) is disabled again, and
  # stopped if it runs (a policy-rc.d the machine already had may allow starting).
  while IFS= read -r link; do
    [[ -n "$link" ]] || continue
    unit="$(basename "$link")"
    if [[ -d /run/systemd/system ]]; then
      "${SUDO[@]}" systemctl stop "$unit" >/dev/null 2>&1 || true
      "${SUDO[@]}" systemctl disable "$unit" >/dev/null 2>&1 || true
    fi
    "${SUDO[@]}" rm -f "$link"
    echo "not enabled at boot: $unit (enabled by its package's install)"
  done < <(comm -13 <(printf '%s\n' "$wants_before") <(wants))
  mkdir -p target
  printf '%s\n' "${missing[@]}" >>target/test-sh-installed.txt
  ((status == 0)) || die "apt-get failed (exit $status) installing: ${missing[*]}"
  echo "installed: ${missing[*]} (listed in target/test-sh-installed.txt)"
  # Only promtool is needed: the prometheus package enables its server at boot.
  if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1; then
    "${SUDO[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
else
  echo "all present: ${APT_PACKAGES[*]} node npm"
fi

node_major="$(node -p 'process.versions.node.split(".")[0]')"
if ((node_major < 20)); then
  die "Node.js $(node --version) is too old: the node tools (oidc-provider 9, playwright-core 1.65) need Node.js 20 or later, and Debian 12's own nodejs is 18.
  Get Node.js 20 one of these ways, then run this script again:
    - NodeSource's Debian packages:  curl -fsSL https://deb.nodesource.com/setup_20.x | sudo bash - && sudo apt-get install -y nodejs
    - nvm, for your user only:       https://github.com/nvm-sh/nvm, then: nvm install 20
    - Debian 13 (trixie) or later ships Node.js 20 in apt."
fi

# --- 2. npm packages for the node tools ---------------------------------------------
section "Node tools (tests/node)"
if [[ ! -d tests/node/node_modules ]] || [[ tests/node/package-lock.json -nt tests/node/node_modules/.package-lock.json ]]; then
  (cd tests/node && npm ci --no-audit --no-fund)
else
  echo "node_modules up to date"
fi
node --test tests/node/selftest.test.mjs

# --- 3. formatting and lints ---------------------------------------------------------
section "cargo fmt --check"
cargo fmt --all -- --check --color "$CARGO_TERM_COLOR"

section "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
# The fuzz entry points (src/fuzzing.rs) and the many-sessions bench seeding
# (src/session/bench_seed.rs) exist only with these features: linted here so
# a change to what they build cannot break them unseen.
section "cargo clippy --all-targets --features fuzzing,bench-sessions -- -D warnings"
cargo clippy --all-targets --features fuzzing,bench-sessions -- -D warnings

# --- 3b. supply chain ---------------------------------------------------------------
# cargo-deny (deny.toml): RustSec advisories, banned or wildcard versions,
# licences, sources. Offline: the advisory database is the snapshot beside the
# repository (../shared/advisory-db, or ADVISORY_DB), copied into a throw-away git
# repository under target/ because cargo-deny reads its database with git.
section "cargo deny check (advisories, bans, licenses, sources)"
if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "installing cargo-deny (crates.io)"
  # The version whose database directory name (below) this script knows.
  cargo install cargo-deny --locked --version 0.20.2
fi
advisory_src="${ADVISORY_DB:-../shared/advisory-db}"
[[ -d "$advisory_src/crates" ]] || die "no RustSec advisory database at $advisory_src: put the snapshot at ../shared/advisory-db beside the repository, or set ADVISORY_DB to a checkout of https://github.com/rustsec/advisory-db"
# cargo-deny looks for the database of db-urls under db-path in a directory named
# after the URL's hash (this name is cargo-deny's for the default RustSec URL).
advisory_db=target/advisory-dbs/advisory-db-3157b0e258782691
rm -rf "$advisory_db"
mkdir -p "$advisory_db"
cp -a "$advisory_src/." "$advisory_db/"
rm -rf "$advisory_db/.git"
snapshot_date="$(grep -o '20[0-9][0-9]-[0-9][0-9]-[0-9][0-9]' "$advisory_src.SNAPSHOT" 2>/dev/null | head -1 || true)"
(
  cd "$advisory_db"
  git init -q
  git add -A
  commit_date="${snapshot_date:+${snapshot_date}T00:00:00Z}"
  export GIT_AUTHOR_DATE="${commit_date:-now}" GIT_COMMITTER_DATE="${commit_date:-now}"
  git -c user.name=advisory-db-snapshot -c user.email=snapshot@localhost -c commit.gpgsign=false \
    commit -q -m "RustSec advisory-db snapshot"
)
# `cargo deny --offline` cannot download the manifests of crates for other
# platforms, which `cargo metadata` reads: fetch them from crates.io first.
cargo fetch --locked -q
cargo deny --offline check --hide-inclusion-graph

# No declared-but-unused dependency (docs/decisions.md, "The design card's
# libraries"): cargo-machete fails on a [dependencies] or [dev-dependencies]
# entry that no source file of the package uses. Exceptions, with why, are in
# Cargo.toml under [package.metadata.cargo-machete].
section "cargo machete (no declared-but-unused dependency)"
if ! command -v cargo-machete >/dev/null 2>&1; then
  echo "installing cargo-machete (crates.io)"
  cargo install cargo-machete --locked --version 0.9.2
fi
cargo machete

# --- 4. every test tier ---------------------------------------------------------------
section "cargo test (unit, integration, real-world and browser tiers)"
# Every test binary runs even after a failure, so one run shows every problem.
cargo test --no-fail-fast "$@"

# --- 5. fuzzing ---------------------------------------------------------------------
# One fuzz build, then each target for a bounded time; cargo-fuzz is installed from
# crates.io when missing. Stable toolchain only (see scripts/fuzz.sh).
section "fuzzing (scripts/fuzz.sh, ${FUZZ_SECONDS:-30} s per target)"
scripts/fuzz.sh
