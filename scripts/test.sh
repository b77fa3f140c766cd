#!/usr/bin/env bash
# The project's one test command (README: "Run the tests").
#
# Installs what the end-to-end tests need, from the project's own lock files, then runs every
# test in the workspace:
#   - npm packages for the JavaScript clients (tests/js/package-lock.json, `npm ci`);
#   - Chromium for the consent-page test (Debian package `chromium`, when missing and root);
#   - haproxy and redis-server for the fleet tests and the shared-cache tests of mcp-auth
#     (Debian packages, when missing and root);
# and checks formatting and lints on the way. Then a two-minute soak with injected faults
# (scripts/soak.sh; SOAK_SECONDS sets its length, 0 skips it), and last a short smoke run of
# every fuzz target (scripts/fuzz.sh; nightly toolchain, cargo-fuzz installed at a pinned
# version when missing); FUZZ_SMOKE_SECONDS sets its length per target (default 5, 0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -f tests/js/package-lock.json ]; then
  if [ ! -d tests/js/node_modules ] || [ tests/js/package-lock.json -nt tests/js/node_modules/.package-lock.json ]; then
    echo "==> npm ci (tests/js)"
    npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
  fi
fi

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then
    echo "==> installing chromium (Debian package) for the consent-page test"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is not installed: run 'sudo apt-get install chromium' (needed by the consent-page test)" >&2
    exit 1
  fi
fi

# The fleet tests (tests/src/fleet.rs) run a real load balancer and a real Redis; the shared-cache
# tests (crates/mcp-auth/tests/redis_fleet.rs) start their own redis-server on a free port.
fleet_packages=()
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || fleet_packages+=(haproxy)
command -v redis-server >/dev/null 2>&1 || fleet_packages+=(redis-server)
if [ "${#fleet_packages[@]}" -gt 0 ]; then
  if [ "$(id -u)" = "0" ]; then
    echo "==> installing ${fleet_packages[*]} (Debian packages) for the fleet tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${fleet_packages[@]}" >/dev/null
  else
    echo "${fleet_packages[*]} not installed: run 'sudo apt-get install ${fleet_packages[*]}' (needed by the fleet tests)" >&2
    exit 1
  fi
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The internals the fuzz targets drive, and the benches that need them: no workspace member
# enables `fuzzing`, so the line above does not build them.
cargo clippy -p mcp-auth --all-targets --locked --features fuzzing -- -D warnings

# Every feature combination of the library builds and is tested. The workspace run below has
# every feature on (the examples enable `metrics` and `redis`); here mcp-auth alone, once with
# no feature (what a default user builds: every test that needs no feature, doctests included)
# and once with each feature by itself (the unit tests and that feature's own integration
# test, marked `required-features` in crates/mcp-auth/Cargo.toml, so none is skipped
# silently; `logging` has unit tests only).
echo "==> cargo test: mcp-auth feature combinations"
cargo test -p mcp-auth --locked --no-default-features
cargo test -p mcp-auth --locked --no-default-features --features metrics --lib --test metrics
cargo test -p mcp-auth --locked --no-default-features --features redis --lib --test redis_fleet
cargo test -p mcp-auth --locked --no-default-features --features logging --lib

# The API docs of both published crates build without a warning (broken links, bad code
# blocks), and both crates package as `cargo publish` would (metadata, included files).
echo "==> cargo doc (warnings denied) and cargo package"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked -p mcp-auth -p mcp-auth-issuer --all-features
cargo package --locked --no-verify -p mcp-auth -p mcp-auth-issuer

echo "==> cargo test"
cargo test --workspace --locked "$@"

# Two minutes: the warm-up, the three slots in which each kind of key-endpoint fault has its
# first window (the resource baseline), and one more slot whose quiet end is compared with it
# (25 s slots at this length; 35 s from 165 s up: tests/src/bin/soak, `Schedule`).
SOAK_SECONDS="${SOAK_SECONDS:-120}"
if [ "$SOAK_SECONDS" != "0" ]; then
  echo "==> soak (${SOAK_SECONDS}s)"
  scripts/soak.sh "$SOAK_SECONDS"
fi

FUZZ_SMOKE_SECONDS="${FUZZ_SMOKE_SECONDS:-5}"
if [ "$FUZZ_SMOKE_SECONDS" != "0" ]; then
  # The fuzz build is a second, sanitizer-instrumented build tree (fuzz/target); a CI machine
  # once ran out of disk here, so the log says what was left before it starts.
  echo "==> disk before the fuzz build: $(df -h --output=avail . | tail -1 | tr -d ' ') free, target/ $(du -sh target 2>/dev/null | cut -f1)"
  echo "==> fuzz smoke (${FUZZ_SMOKE_SECONDS}s per target)"
  scripts/fuzz.sh "$FUZZ_SMOKE_SECONDS"
fi
