#!/usr/bin/env bash
# The soak with injected faults (issue 14; results in RELIABILITY.md). Runs
# examples/oidc-resource-server and examples/quickstart (Clerk mode) against mcp-auth-issuer
# through a fault proxy, at about half of each server's measured maximum throughput, with a mix
# of valid, expired, wrong-audience and garbage tokens, while the signing key rotates every
# 30 s, the key endpoint fails in 20 s windows (500, hang, garbage), the Backend API answers
# 429 + Retry-After, 5xx and hangs in bursts, and clients disconnect mid-request or send byte
# by byte. The driver and the proxy are tests/src/bin/soak (crate e2e, never published).
#
#   scripts/soak.sh [SECONDS]        # default 600 (ten minutes); SOAK_SECONDS works too
#
# Prints the answers per server, token kind and status, the resource figures, and every
# violation; exits non-zero on any violation. Logs and the report go to target/soak/ (under $CARGO_TARGET_DIR when set).
# PROFILE=release builds and runs optimised binaries (default: the debug build the tests use).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_TOTAL="${1:-${SOAK_SECONDS:-600}}"
PROFILE="${PROFILE:-debug}"
profile_flag=()
[ "$PROFILE" = "release" ] && profile_flag=(--release)

echo "==> building the servers, the issuer and the soak driver ($PROFILE)"
# The same units `cargo test --workspace` builds (tests included, so that dev-dependency
# features resolve as they did there): after the test run this only links what is missing.
cargo build --locked -q "${profile_flag[@]}" --workspace --bins --tests

echo "==> soak for ${SECONDS_TOTAL}s"
TARGET_DIR=${CARGO_TARGET_DIR:-target}
exec "$TARGET_DIR/$PROFILE/soak" --seconds "$SECONDS_TOTAL" --bin-dir "$TARGET_DIR/$PROFILE" --out "$TARGET_DIR/soak"
