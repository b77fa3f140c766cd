#!/usr/bin/env bash
# Instruction and cache-miss counts per request (BENCHMARKS.md, "Where the layer's
# instruction-cache misses are"): the figures a wall-clock run cannot give on a shared machine,
# because callgrind counts the same on every run whatever else the machine does.
#
# Builds the release profile (the logging targets' profile), starts mcp-auth-issuer for the
# tokens and keys, then runs each stack under `valgrind --tool=callgrind` with its cache and
# branch simulation: WARMUP requests, counters zeroed, REQUESTS sequential `tools/call whoami` on
# one keep-alive connection, counters dumped. Stacks (STACKS, default all three):
#   floor       plain rmcp, no auth (crates/mcp-auth/examples/rmcp-floor.rs)
#   warn        examples/oidc-resource-server at RUST_LOG=warn
#   as-shipped  the same with no RUST_LOG (its default filter), its log to a file
# Prints per request: instructions, L1 instruction and data misses, last-level misses,
# mispredicted conditional and indirect branches, and estimated cycles (instructions + 10 x L1
# misses + 100 x last-level misses + 15 x conditional + 20 x indirect mispredictions, the model
# BENCHMARKS.md uses), with each stack's ratio to the floor (floor / stack: higher is better,
# as in scripts/bench.sh). The callgrind files stay in target/callgrind for callgrind_annotate.
#
#   scripts/callgrind.sh                          # about 2 minutes per stack after the build
#   STACKS="floor warn" REQUESTS=500 scripts/callgrind.sh
set -euo pipefail
cd "$(dirname "$0")/.."

STACKS=${STACKS:-floor warn as-shipped}
REQUESTS=${REQUESTS:-2000}
WARMUP=${WARMUP:-300}
command -v valgrind >/dev/null || { echo "valgrind is needed: apt-get install valgrind" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is needed (the request loop)" >&2; exit 1; }

echo "==> building (release profile)"
cargo build --release --locked -q -p mcp-auth-issuer -p oidc-resource-server
cargo build --release --locked -q -p mcp-auth --example rmcp-floor
TARGET_DIR=${CARGO_TARGET_DIR:-target}
REL=$TARGET_DIR/release
OUT=$TARGET_DIR/callgrind
mkdir -p "$OUT"

SECRET=sk_test_callgrindcallgrindcallgrind
ISSUER_PORT=8698 PORT=8696
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$REL/mcp-auth-issuer" --ephemeral --port $ISSUER_PORT --secret-key $SECRET --rate-limit 100000 >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 1 200); do curl -s -o /dev/null "http://127.0.0.1:$ISSUER_PORT/.well-known/jwks.json" && break; sleep 0.05; done
kill -0 "${PIDS[0]}" 2>/dev/null || { echo "the issuer did not start (port $ISSUER_PORT taken?)" >&2; exit 1; }
# The floor ignores the token; it answers with the identity the minted tokens carry.
TOKEN=$(curl -s -X POST "http://127.0.0.1:$ISSUER_PORT/admin/tokens/access" -H "Authorization: Bearer $SECRET" \
  -H 'Content-Type: application/json' \
  -d "{\"user_id\":\"user_2aliceQx7Vn3Kp9Lm2Rt8Wz4Yb6\",\"client_id\":\"bench\",\"scopes\":[\"profile\",\"email\"],\"resource\":\"http://127.0.0.1:$PORT/mcp\"}" |
  sed -E 's/.*"token":"([^"]+)".*/\1/')

requests() { # count: sequential keep-alive tools/call whoami; fails unless every answer is 200
  python3 - "$PORT" "$1" "$TOKEN" <<'PY'
import http.client, sys
port, n, token = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}'
headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
           "MCP-Protocol-Version": "2025-06-18", "Authorization": "Bearer " + token}
conn = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    conn.request("POST", "/mcp", body, headers)
    answer = conn.getresponse()
    answer.read()
    if answer.status != 200:
        sys.exit(f"HTTP {answer.status} from the server under measurement")
PY
}

declare -A EST
printf '%-11s %10s %9s %9s %7s %8s %8s %11s %6s\n' stack instr I1miss D1miss LLmiss condmiss indmiss est.cycles ratio
for stack in $STACKS; do
  case $stack in
    # The environment is set for valgrind, not by running `env` under it: valgrind stops
    # following a program that execs another.
    floor) vars=(-u RUST_LOG); cmd=("$REL/examples/rmcp-floor" $PORT) ;;
    warn) vars=(RUST_LOG=warn); cmd=("$REL/oidc-resource-server" --issuer "http://127.0.0.1:$ISSUER_PORT" --port $PORT) ;;
    as-shipped) vars=(-u RUST_LOG); cmd=("$REL/oidc-resource-server" --issuer "http://127.0.0.1:$ISSUER_PORT" --port $PORT) ;;
    *) echo "unknown stack: $stack (floor, warn, as-shipped)" >&2; exit 2 ;;
  esac
  rm -f "$OUT/$stack".out*
  env "${vars[@]}" valgrind --tool=callgrind --cache-sim=yes --branch-sim=yes --callgrind-out-file="$OUT/$stack.out" \
    "${cmd[@]}" >"$OUT/$stack.log" 2>&1 &
  pid=$!
  PIDS+=($pid)
  for _ in $(seq 1 600); do curl -s -o /dev/null -X POST "http://127.0.0.1:$PORT/mcp" && break; sleep 0.1; done
  kill -0 $pid 2>/dev/null || { echo "$stack did not start (port $PORT taken?): $OUT/$stack.log" >&2; exit 1; }
  requests "$WARMUP"
  callgrind_control -z $pid >/dev/null 2>&1
  requests "$REQUESTS"
  callgrind_control -d $pid >/dev/null 2>&1
  kill $pid; wait $pid 2>/dev/null || true
  # The dump made by -d is the newest numbered file (the one written at exit has no number);
  # its `summary:` line holds the counts since the zero.
  dump=$(ls -t "$OUT/$stack".out.* | head -1)
  line=$(python3 - "$dump" "$REQUESTS" <<'PY'
import sys
events = summary = None
for l in open(sys.argv[1], errors="replace"):
    if l.startswith("events:"): events = l.split()[1:]
    elif l.startswith(("summary:", "totals:")) and summary is None: summary = [int(x) for x in l.split()[1:]]
n = int(sys.argv[2])
c = dict(zip(events, summary))
l1 = c["I1mr"] + c["D1mr"] + c["D1mw"]; ll = c["ILmr"] + c["DLmr"] + c["DLmw"]
est = c["Ir"] + 10 * l1 + 100 * ll + 15 * c["Bcm"] + 20 * c["Bim"]
print(f'{c["Ir"]/n:.0f} {c["I1mr"]/n:.1f} {(c["D1mr"]+c["D1mw"])/n:.1f} {ll/n:.1f} {c["Bcm"]/n:.1f} {c["Bim"]/n:.1f} {est/n:.0f}')
PY
)
  read -r ir i1 d1 ll bcm bim est <<<"$line"
  EST[$stack]=$est
  ratio=-; [[ -n ${EST[floor]:-} ]] && ratio=$(awk -v f="${EST[floor]}" -v s="$est" 'BEGIN {printf "%.3f", f/s}')
  printf '%-11s %10s %9s %9s %7s %8s %8s %11s %6s\n' "$stack" "$ir" "$i1" "$d1" "$ll" "$bcm" "$bim" "$est" "$ratio"
done
echo "per request, over $REQUESTS requests after $WARMUP warm-up; callgrind files in $OUT"
