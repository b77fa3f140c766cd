#!/usr/bin/env bash
# Load harness (BENCHMARKS.md): builds release binaries, starts each stack on loopback, and
# measures one stateless `tools/call whoami` with wrk — same request, same load for all:
#   (a) rmcp floor: plain rmcp, no auth           (crates/mcp-auth/examples/rmcp-floor.rs)
#   (b) examples/oidc-resource-server, RS256 JWT verified against mcp-auth-issuer's JWKS
#   (c) examples/quickstart, opaque oat_ tokens through the Clerk preset (after warm-up)
#   (d) the bad-token path: (b) with an invalid token (401 expected)
# Every server logs at warn (RUST_LOG=warn), the level a loaded production server runs at.
# Tokens and keys come from mcp-auth-issuer started here. Prints req/s, p50, p99, non-2xx,
# peak RSS and the ratio to (a).
#
#   scripts/bench.sh                    # 20 s per stack after a 5 s warm-up, c=32
#   DURATION=10 CONNECTIONS=64 scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20}
WARMUP=${WARMUP:-5}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

echo "==> building release binaries"
cargo build --release --locked -q -p mcp-auth-issuer -p oidc-resource-server -p quickstart
cargo build --release --locked -q -p mcp-auth --example rmcp-floor
BIN=target/release

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_http() { # url
  for _ in $(seq 1 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done
  echo "not ready: $1" >&2; exit 1
}

SECRET=sk_test_benchbenchbenchbenchbenchbench
JWT_ISSUER_PORT=8798 OPAQUE_ISSUER_PORT=8799
FLOOR_PORT=8790 OIDC_PORT=8791 QUICKSTART_PORT=8792

$BIN/mcp-auth-issuer --port $JWT_ISSUER_PORT --secret-key $SECRET --rate-limit 100000 >/dev/null 2>&1 & PIDS+=($!)
$BIN/mcp-auth-issuer --port $OPAQUE_ISSUER_PORT --secret-key $SECRET --token-format opaque --rate-limit 1000 >/dev/null 2>&1 & PIDS+=($!)
wait_http http://127.0.0.1:$JWT_ISSUER_PORT/.well-known/jwks.json
wait_http http://127.0.0.1:$OPAQUE_ISSUER_PORT/.well-known/jwks.json

mint() { # issuer-port resource
  curl -s -X POST "http://127.0.0.1:$1/admin/tokens/access" -H "Authorization: Bearer $SECRET" \
    -H 'Content-Type: application/json' \
    -d "{\"user_id\":\"user_2aliceQx7Vn3Kp9Lm2Rt8Wz4Yb6\",\"client_id\":\"bench\",\"scopes\":[\"profile\",\"email\"],\"resource\":\"$2\"}" |
    sed -E 's/.*"token":"([^"]+)".*/\1/'
}

start_timed() { # name port cmd... ; records start-to-ready time in READY_MS
  local port=$2; shift 2
  local t0; t0=$(date +%s%N)
  "$@" >/dev/null 2>&1 & PIDS+=($!); LAST_PID=$!
  for _ in $(seq 1 2000); do
    curl -s -o /dev/null "http://127.0.0.1:$port/.well-known/oauth-protected-resource" && break
    curl -s -o /dev/null -X POST "http://127.0.0.1:$port/mcp" && break
    sleep 0.005
  done
  READY_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
}

start_timed floor $FLOOR_PORT $BIN/examples/rmcp-floor $FLOOR_PORT; FLOOR_PID=$LAST_PID; FLOOR_READY=$READY_MS
start_timed oidc $OIDC_PORT env RUST_LOG=warn $BIN/oidc-resource-server --issuer http://127.0.0.1:$JWT_ISSUER_PORT --port $OIDC_PORT
OIDC_PID=$LAST_PID; OIDC_READY=$READY_MS
PK="pk_test_$(printf '127.0.0.1:%s$' $OPAQUE_ISSUER_PORT | base64 -w0)"
start_timed quickstart $QUICKSTART_PORT env CLERK_SECRET_KEY=$SECRET CLERK_PUBLISHABLE_KEY="$PK" \
  CLERK_API_URL=http://127.0.0.1:$OPAQUE_ISSUER_PORT CLERK_FRONTEND_API_URL=http://127.0.0.1:$OPAQUE_ISSUER_PORT \
  RUST_LOG=warn $BIN/quickstart --port $QUICKSTART_PORT
QS_PID=$LAST_PID; QS_READY=$READY_MS

JWT=$(mint $JWT_ISSUER_PORT "http://127.0.0.1:$OIDC_PORT/mcp")
OAT=$(mint $OPAQUE_ISSUER_PORT "http://127.0.0.1:$QUICKSTART_PORT/mcp")
[[ $JWT == *.*.* && $OAT == oat_* ]] || { echo "token minting failed" >&2; exit 1; }

declare -A RPS P50 P99 NON2XX RSS READY
run() { # name port pid token
  local name=$1 url="http://127.0.0.1:$2/mcp" pid=$3 token=$4
  # A correct answer first, so a misconfigured stack is not "fast".
  local code; code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url" -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' ${token:+-H "Authorization: Bearer $token"} \
    -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}')
  echo "==> $name: first answer HTTP $code"
  TOKEN=$token wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" -s scripts/bench/tools-call.lua "$url" >/dev/null
  local out; out=$(TOKEN=$token wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s scripts/bench/tools-call.lua "$url")
  RPS[$name]=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  P50[$name]=$(awk '$1=="50%" {print $2}' <<<"$out")
  P99[$name]=$(awk '$1=="99%" {print $2}' <<<"$out")
  NON2XX[$name]=$(awk '/Non-2xx/ {print $5}' <<<"$out"); NON2XX[$name]=${NON2XX[$name]:-0}
  RSS[$name]=$(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' /proc/"$pid"/status)
}

run "a-rmcp-floor" $FLOOR_PORT $FLOOR_PID ""
run "b-oidc-jwt" $OIDC_PORT $OIDC_PID "$JWT"
run "c-quickstart-opaque" $QUICKSTART_PORT $QS_PID "$OAT"
run "d-bad-token-401" $OIDC_PORT $OIDC_PID "not.a.valid-token"
READY[a-rmcp-floor]=$FLOOR_READY READY[b-oidc-jwt]=$OIDC_READY READY[c-quickstart-opaque]=$QS_READY READY[d-bad-token-401]=$OIDC_READY

echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s after ${WARMUP}s warm-up"
printf '%-22s %10s %9s %9s %9s %12s %10s %7s\n' stack req/s p50 p99 non-2xx "peak RSS" "ready ms" ratio
floor=${RPS[a-rmcp-floor]}
for name in a-rmcp-floor b-oidc-jwt c-quickstart-opaque d-bad-token-401; do
  ratio=$(awk -v a="${RPS[$name]}" -v f="$floor" 'BEGIN {printf "%.2f", a/f}')
  printf '%-22s %10s %9s %9s %9s %12s %10s %7s\n' "$name" "${RPS[$name]}" "${P50[$name]}" "${P99[$name]}" \
    "${NON2XX[$name]}" "${RSS[$name]}" "${READY[$name]}" "$ratio"
done
echo "(d) shares (b)'s process, so its peak RSS is (b)'s over both runs; ready ms is start to first answer."
