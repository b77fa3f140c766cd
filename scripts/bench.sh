#!/usr/bin/env bash
# Load harness (BENCHMARKS.md): builds optimised binaries, starts each stack on loopback, and
# measures one stateless `tools/call whoami` with wrk — same request, same load for all:
#   (a) rmcp floor: plain rmcp, no auth           (crates/mcp-auth/examples/rmcp-floor.rs)
#   (b) examples/oidc-resource-server, RS256 JWT verified against mcp-auth-issuer's JWKS
#   (c) examples/quickstart, opaque oat_ tokens through the Clerk preset (after warm-up)
#   (d) the bad-token path: (b) with an invalid token (401 expected)
# The floor gets the same request bytes as (b), bearer token included (it ignores the header):
# reading and parsing an 800-byte header is the cost of the client's request, not of checking it.
# And it answers with the same body as (b)'s whoami for the tokens minted here (same user id,
# client and scopes; checked below): writing the answer is the tool's cost, not authentication's.
# Every server logs at warn (RUST_LOG=warn), the level a loaded production server runs at.
# Tokens and keys come from mcp-auth-issuer started here. Prints req/s, p50, p99, non-2xx,
# peak RSS, the ratio to (a), and the server's CPU time per request with its ratio to (a)'s.
# The stacks are measured in ROUNDS interleaved rounds (a b c d a b c d …) and each figure is
# the median over the rounds, so a slow moment of the machine does not land on one stack only.
# Then session mode: a fresh rmcp floor and a fresh (b), each with sessions on, open SESSIONS
# sessions (examples/open-sessions.rs); prints the memory they hold and what opening one costs.
# Then the cache bound: TOKENS distinct valid tokens through each verification cache
# (examples/token-churn.rs), with RSS as it goes.
# Then the shared cache: the quickstart on opaque tokens (c) with `--redis-url` against a local
# redis-server beside the same binary without it, in interleaved rounds, both at their default log
# level (as a user runs them); target >= 0.9x (hits are served from the local cache first; Redis is
# asked only on a local miss).
# Last, the logging defaults, in the release profile with a one-thread wrk: the rmcp floor, the
# oidc example as shipped (no RUST_LOG: its default filter, logs to a file) and at RUST_LOG=warn,
# in interleaved rounds, each round with freshly started servers; prints each one's ratio to the
# floor in req/s and in server CPU per request, each paired within rounds and with its 90 %
# bootstrap interval, and the log lines per request. A second
# floor (the same binary, another fresh process) is measured beside them and judged the same way:
# how far this run's estimators stray from 1.00 when nothing differs.
#
#   scripts/bench.sh                    # 5 rounds of 20 s per stack after a 5 s warm-up, c=32
#   DURATION=10 ROUNDS=1 CONNECTIONS=64 SESSIONS=1000 TOKENS=100000 scripts/bench.sh
#   PARTS=logging scripts/bench.sh      # only some parts: any of load sessions cache shared logging
#   KEEP_LOGS=1 PARTS=logging scripts/bench.sh   # keep the logging part's server logs (~650 MB)
#   PARTS=logging ROUNDS=64 DURATION=5 WARMUP=2 scripts/bench.sh   # the logging verdicts BENCHMARKS.md
#                                       # records, about half an hour (ROUNDS a multiple of 4 balances the order)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20}
WARMUP=${WARMUP:-5}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-5}
SESSIONS=${SESSIONS:-10000}
TOKENS=${TOKENS:-1000000}
PARTS=${PARTS:-load sessions cache shared logging}
want() { [[ " $PARTS " == *" $1 "* ]]; }
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

# The measured binaries use the `production` profile (release + fat LTO, one codegen unit: see
# Cargo.toml); the issuer, which only mints tokens and serves keys, is a plain release build.
echo "==> building binaries (profile production; the first build takes several minutes)"
cargo build --release --locked -q -p mcp-auth-issuer
if want shared; then
  command -v redis-server >/dev/null || { echo "redis-server is needed: apt-get install redis-server" >&2; exit 1; }
fi
if want load || want sessions || want cache || want shared; then
  cargo build --profile production --locked -q -p oidc-resource-server -p quickstart
  cargo build --profile production --locked -q -p mcp-auth --example rmcp-floor --example open-sessions --example token-churn
fi
if want logging; then
  # The logging targets hold in the release profile too, not only the production one.
  cargo build --release --locked -q -p oidc-resource-server
  cargo build --release --locked -q -p mcp-auth --example rmcp-floor
fi
# CARGO_TARGET_DIR is honoured, so a measurement can build beside a running test suite.
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN=$TARGET_DIR/production

PIDS=()
LOGDIR=
# The as-shipped server's log grows by about 650 MB in a default logging run: removed at exit
# unless KEEP_LOGS=1.
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
  if [[ -n $LOGDIR && -z ${KEEP_LOGS:-} ]]; then rm -rf "$LOGDIR"; fi
}
trap cleanup EXIT

wait_http() { # url
  for _ in $(seq 1 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done
  echo "not ready: $1" >&2; exit 1
}

SECRET=sk_test_benchbenchbenchbenchbenchbench
JWT_ISSUER_PORT=8798 OPAQUE_ISSUER_PORT=8799
FLOOR_PORT=8790 OIDC_PORT=8791 QUICKSTART_PORT=8792 OIDC_SESSIONS_PORT=8793 FLOOR_SESSIONS_PORT=8794
LOG_FLOOR_PORT=8795 LOG_OIDC_PORT=8796 LOG_OIDC_WARN_PORT=8797 LOG_FLOOR_AGAIN_PORT=8789
SHARED_REDIS_PORT=8780 SHARED_QS_PORT=8781 LOCAL_QS_PORT=8782

$TARGET_DIR/release/mcp-auth-issuer --ephemeral --port $JWT_ISSUER_PORT --secret-key $SECRET --rate-limit 100000 >/dev/null 2>&1 & PIDS+=($!)
$TARGET_DIR/release/mcp-auth-issuer --ephemeral --port $OPAQUE_ISSUER_PORT --secret-key $SECRET --token-format opaque --rate-limit 1000 >/dev/null 2>&1 & PIDS+=($!)
wait_http http://127.0.0.1:$JWT_ISSUER_PORT/.well-known/jwks.json
wait_http http://127.0.0.1:$OPAQUE_ISSUER_PORT/.well-known/jwks.json

mint() { # issuer-port resource
  curl -s -X POST "http://127.0.0.1:$1/admin/tokens/access" -H "Authorization: Bearer $SECRET" \
    -H 'Content-Type: application/json' \
    -d "{\"user_id\":\"user_2aliceQx7Vn3Kp9Lm2Rt8Wz4Yb6\",\"client_id\":\"bench\",\"scopes\":[\"profile\",\"email\"],\"resource\":\"$2\"}" |
    sed -E 's/.*"token":"([^"]+)".*/\1/'
}

answer() { # port token: the body of one whoami call
  curl -s -X POST "http://127.0.0.1:$1/mcp" -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' -H "Authorization: Bearer $2" \
    -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}'
}

start_timed() { # name port cmd... ; records start-to-ready time in READY_MS; output to $OUT
  local port=$2; shift 2
  local t0; t0=$(date +%s%N)
  "$@" >"${OUT:-/dev/null}" 2>&1 & PIDS+=($!); LAST_PID=$!
  for _ in $(seq 1 2000); do
    curl -s -o /dev/null "http://127.0.0.1:$port/.well-known/oauth-protected-resource" && break
    curl -s -o /dev/null -X POST "http://127.0.0.1:$port/mcp" && break
    sleep 0.005
  done
  READY_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
}

declare -A RPS P50 P99 NON2XX RSS READY CPU LINES
cpu_ticks() { awk '{print $14 + $15}' /proc/"$1"/stat; } # the process's user + system time
percentile_ms() { # wrk's "--latency" line for $1 (e.g. 99%), in ms whatever unit wrk chose
  awk -v p="$1" '$1==p {v=$2; print (v ~ /us$/ ? v/1000 : (v ~ /ms$/ ? v+0 : v*1000))}'
}
run() { # name port pid token round; LOGFILE: the server's log, to count lines per request
  local name=$1 url="http://127.0.0.1:$2/mcp" pid=$3 token=$4 round=$5
  # A correct answer first, so a misconfigured stack is not "fast".
  local code; code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url" -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' ${token:+-H "Authorization: Bearer $token"} \
    -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}')
  echo "==> round $round, $name: first answer HTTP $code"
  TOKEN=$token wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" -s scripts/bench/tools-call.lua "$url" >/dev/null
  local ticks0; ticks0=$(cpu_ticks "$pid")
  local lines0=0; [[ -z ${LOGFILE:-} ]] || lines0=$(wc -l <"$LOGFILE")
  local out; out=$(TOKEN=$token wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s scripts/bench/tools-call.lua "$url")
  local ticks=$(( $(cpu_ticks "$pid") - ticks0 ))
  if [[ -n ${LOGFILE:-} ]]; then
    # Lines the log writer's thread had written by the end of the run, per request served.
    local lines=$(( $(wc -l <"$LOGFILE") - lines0 ))
    LINES[$name]+="$(awk -v l="$lines" '/ requests in / {printf "%.2f", l / $1}' <<<"$out") "
  fi
  RPS[$name]+="$(awk '/Requests\/sec/ {print $2}' <<<"$out") "
  # Server CPU time per request: what the stack itself costs, whatever share of the two cores
  # wrk took in that round.
  CPU[$name]+="$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" '/ requests in / {printf "%.1f", t / hz / $1 * 1e6}' <<<"$out") "
  P50[$name]+="$(percentile_ms 50% <<<"$out") "
  P99[$name]+="$(percentile_ms 99% <<<"$out") "
  local n; n=$(awk '/Non-2xx/ {print $5}' <<<"$out"); NON2XX[$name]+="${n:-0} "
  RSS[$name]=$(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' /proc/"$pid"/status)
}
values() { tr ' ' '\n' <<<"$1" | grep -v '^$'; } # a space-separated per-round list, one per line
median() { values "$1" | sort -g | awk '{v[NR]=$1} END {printf "%.2f", NR % 2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
lowest() { values "$1" | sort -g | head -1; }
paired_ratios() { # floor's per-round list, a stack's -> each round's stack/floor, space-separated
  paste -d' ' <(values "$1") <(values "$2") | awk '{printf "%.4f ", $2 / $1}'
}
median_ci() { # a per-round list -> "LOW-HIGH": its median's 90 % bootstrap interval (2,000 resamples)
  values "$1" | awk 'BEGIN {srand(14)} {v[NR] = $1}
    function median(a, n,   i, j, t) { # sorts a[1..n] in place (insertion sort: n is small)
      for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    END {
      if (NR < 2) { printf "-"; exit }
      for (b = 1; b <= 2000; b++) { for (i = 1; i <= NR; i++) s[i] = v[int(rand() * NR) + 1]; m[b] = median(s, NR) }
      median(m, 2000); printf "%.2f-%.2f", m[101], m[1900]
    }'
}

if want load; then
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

for round in $(seq 1 "$ROUNDS"); do
  run "a-rmcp-floor" $FLOOR_PORT $FLOOR_PID "$JWT" "$round"
  run "b-oidc-jwt" $OIDC_PORT $OIDC_PID "$JWT" "$round"
  run "c-quickstart-opaque" $QUICKSTART_PORT $QS_PID "$OAT" "$round"
  run "d-bad-token-401" $OIDC_PORT $OIDC_PID "not.a.valid-token" "$round"
done
READY[a-rmcp-floor]=$FLOOR_READY READY[b-oidc-jwt]=$OIDC_READY READY[c-quickstart-opaque]=$QS_READY READY[d-bad-token-401]=$OIDC_READY

echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s after ${WARMUP}s warm-up; median of $ROUNDS rounds"
printf '%-22s %10s %9s %9s %9s %12s %10s %7s %12s %9s\n' stack req/s "p50 ms" "p99 ms" non-2xx "peak RSS" "ready ms" ratio "CPU us/req" "CPU ratio"
floor=$(median "${RPS[a-rmcp-floor]}")
floor_cpu=$(median "${CPU[a-rmcp-floor]}")
for name in a-rmcp-floor b-oidc-jwt c-quickstart-opaque d-bad-token-401; do
  rps=$(median "${RPS[$name]}")
  ratio=$(awk -v a="$rps" -v f="$floor" 'BEGIN {printf "%.2f", a/f}')
  cpu=$(median "${CPU[$name]}")
  # Like the req/s ratio, higher is better: the floor's CPU per request over this stack's.
  cpu_ratio=$(awk -v c="$cpu" -v f="$floor_cpu" 'BEGIN {printf "%.2f", f/c}')
  printf '%-22s %10s %9s %9s %9s %12s %10s %7s %12s %9s\n' "$name" "$rps" "$(median "${P50[$name]}")" \
    "$(median "${P99[$name]}")" "$(median "${NON2XX[$name]}" | cut -d. -f1)" "${RSS[$name]}" "${READY[$name]}" "$ratio" \
    "$cpu" "$cpu_ratio"
done
echo "per round req/s, and server CPU us per request:"
for name in a-rmcp-floor b-oidc-jwt c-quickstart-opaque d-bad-token-401; do echo "  $name: ${RPS[$name]}| ${CPU[$name]}"; done
echo "(d) shares (b)'s process, so its peak RSS is (b)'s over both runs; ready ms is start to first answer."
fi

if want sessions; then
# Session mode, on fresh processes so the figures are the sessions' alone.
start_timed floor-sessions $FLOOR_SESSIONS_PORT $BIN/examples/rmcp-floor $FLOOR_SESSIONS_PORT --sessions
FLOOR_S_PID=$LAST_PID
start_timed oidc-sessions $OIDC_SESSIONS_PORT env RUST_LOG=warn $BIN/oidc-resource-server \
  --issuer http://127.0.0.1:$JWT_ISSUER_PORT --port $OIDC_SESSIONS_PORT --sessions --max-sessions $((SESSIONS + 1))
OIDC_S_PID=$LAST_PID
JWT_S=$(mint $JWT_ISSUER_PORT "http://127.0.0.1:$OIDC_SESSIONS_PORT/mcp")
declare -A S_LINE S_BEFORE S_AFTER
sessions() { # name port pid token
  local name=$1 url="http://127.0.0.1:$2/mcp" pid=$3
  # One session first, so one-time setup (key fetch, first allocations) is not counted.
  TOKEN=$4 $BIN/examples/open-sessions "$url" 1 1 >/dev/null
  S_BEFORE[$name]=$(awk '/VmRSS/ {print $2}' /proc/"$pid"/status)
  echo "==> $name: opening $SESSIONS sessions"
  S_LINE[$name]=$(TOKEN=$4 $BIN/examples/open-sessions "$url" "$SESSIONS" "$CONNECTIONS")
  S_AFTER[$name]=$(awk '/VmRSS/ {print $2}' /proc/"$pid"/status)
}
sessions "rmcp-floor" $FLOOR_SESSIONS_PORT $FLOOR_S_PID ""
sessions "oidc-jwt" $OIDC_SESSIONS_PORT $OIDC_S_PID "$JWT_S"

echo
echo "session mode: $SESSIONS sessions opened over $CONNECTIONS connections (one initialize each)"
printf '%-12s %14s %14s %14s %12s %9s %9s\n' server "RSS before" "RSS after" "per session" sessions/s "p50 ms" "p99 ms"
for name in rmcp-floor oidc-jwt; do
  line=${S_LINE[$name]}
  field() { sed -E "s/.*$1=([0-9.]+).*/\1/" <<<"$line"; }
  printf '%-12s %10.1f MiB %10.1f MiB %10.1f KiB %12s %9.2f %9.2f\n' "$name" \
    "$(awk -v k="${S_BEFORE[$name]}" 'BEGIN {print k/1024}')" "$(awk -v k="${S_AFTER[$name]}" 'BEGIN {print k/1024}')" \
    "$(awk -v a="${S_AFTER[$name]}" -v b="${S_BEFORE[$name]}" -v n="$SESSIONS" 'BEGIN {print (a-b)/n}')" \
    "$(field per_second)" "$(awk -v u="$(field p50_us)" 'BEGIN {print u/1000}')" "$(awk -v u="$(field p99_us)" 'BEGIN {print u/1000}')"
done
fi

if want cache; then
echo
echo "cache bound: $TOKENS distinct valid tokens through each verification cache"
$BIN/examples/token-churn both "$TOKENS"
fi

if want shared; then
# The shared verification cache must cost (almost) nothing on the hot path: the same opaque token
# again and again is a local hit on both, and the Redis replica asks Redis only on a local miss.
redis-server --port $SHARED_REDIS_PORT --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 & PIDS+=($!)
for _ in $(seq 1 200); do redis-cli -p $SHARED_REDIS_PORT ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done
PK="pk_test_$(printf '127.0.0.1:%s$' $OPAQUE_ISSUER_PORT | base64 -w0)"
clerk_env=(CLERK_SECRET_KEY=$SECRET CLERK_PUBLISHABLE_KEY="$PK" CLERK_API_URL=http://127.0.0.1:$OPAQUE_ISSUER_PORT
  CLERK_FRONTEND_API_URL=http://127.0.0.1:$OPAQUE_ISSUER_PORT)
start_timed qs-local $LOCAL_QS_PORT env "${clerk_env[@]}" $BIN/quickstart --port $LOCAL_QS_PORT; LOCAL_PID=$LAST_PID
start_timed qs-redis $SHARED_QS_PORT env "${clerk_env[@]}" $BIN/quickstart --port $SHARED_QS_PORT \
  --redis-url redis://127.0.0.1:$SHARED_REDIS_PORT; SHARED_PID=$LAST_PID
OAT_L=$(mint $OPAQUE_ISSUER_PORT "http://127.0.0.1:$LOCAL_QS_PORT/mcp")
OAT_S=$(mint $OPAQUE_ISSUER_PORT "http://127.0.0.1:$SHARED_QS_PORT/mcp")
for round in $(seq 1 "$ROUNDS"); do
  run "shared-a-local-cache" $LOCAL_QS_PORT $LOCAL_PID "$OAT_L" "$round"
  run "shared-b-redis" $SHARED_QS_PORT $SHARED_PID "$OAT_S" "$round"
done
echo
echo "shared cache: quickstart, opaque token, wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s after ${WARMUP}s warm-up; median of $ROUNDS rounds"
printf '%-22s %10s %9s %9s %9s %7s %12s %5s\n' stack req/s "p50 ms" "p99 ms" non-2xx ratio "CPU us/req" met
base=$(median "${RPS[shared-a-local-cache]}")
for name in shared-a-local-cache shared-b-redis; do
  rps=$(median "${RPS[$name]}")
  ratio=$(awk -v a="$rps" -v f="$base" 'BEGIN {printf "%.2f", a/f}')
  met=-; [[ $name == shared-b-redis ]] && met=$(awk -v r="$ratio" 'BEGIN {print (r >= 0.9 ? "yes" : "NO")}')
  printf '%-22s %10s %9s %9s %9s %7s %12s %5s\n' "$name" "$rps" "$(median "${P50[$name]}")" \
    "$(median "${P99[$name]}")" "$(median "${NON2XX[$name]}" | cut -d. -f1)" "$ratio" "$(median "${CPU[$name]}")" "$met"
done
echo "per round req/s: a ${RPS[shared-a-local-cache]}| b ${RPS[shared-b-redis]}"
fi

if want logging; then
# The logging defaults as a user meets them: the release profile, the oidc example with no
# RUST_LOG (its default filter) and its output going to a file, beside the same binary at
# RUST_LOG=warn and the floor, measured with a one-thread wrk in interleaved rounds, each round
# with freshly started servers.
REL=$TARGET_DIR/release
LOGDIR=$(mktemp -d)
JWT_L=$(mint $JWT_ISSUER_PORT "http://127.0.0.1:$LOG_OIDC_PORT/mcp")
JWT_LW=$(mint $JWT_ISSUER_PORT "http://127.0.0.1:$LOG_OIDC_WARN_PORT/mcp")
# Fresh servers for every round. Identical processes of one binary, measured side by side in
# one run, came out up to 2 us apart per request (BENCHMARKS.md, "How finely a run can tell"),
# about what authentication costs. With one process per stack for the whole run, whatever part
# of that belongs to the process (its memory layout, its threads' placement) was a bias fixed for
# the run; with fresh ones it is noise from round to round, which the paired median averages.
# The floor against itself: a second process of the floor's binary, measured and judged like the
# stacks. Its ratios differ from 1.00 by this run's noise alone, so they show how finely the run
# could tell a stack's ratio (BENCHMARKS.md, "The floor against itself").
# One measured run of each stack, in the current round with that round's servers.
measure_floor() { THREADS=1 run "log-a-rmcp-floor" $LOG_FLOOR_PORT $LOG_FLOOR_PID "$JWT_L" "$round"; }
measure_floor_again() { THREADS=1 run "log-d-rmcp-floor-again" $LOG_FLOOR_AGAIN_PORT $LOG_FLOOR_AGAIN_PID "$JWT_L" "$round"; }
measure_shipped() { THREADS=1 LOGFILE=$LOGDIR/as-shipped-$round.log run "log-b-oidc-as-shipped" $LOG_OIDC_PORT $LOG_OIDC_PID "$JWT_L" "$round"; }
measure_warn() { THREADS=1 LOGFILE=$LOGDIR/warn-$round.log run "log-c-oidc-warn" $LOG_OIDC_WARN_PORT $LOG_OIDC_WARN_PID "$JWT_LW" "$round"; }
start_floor() { start_timed log-floor $LOG_FLOOR_PORT $REL/examples/rmcp-floor $LOG_FLOOR_PORT; LOG_FLOOR_PID=$LAST_PID; }
start_floor_again() {
  start_timed log-floor-again $LOG_FLOOR_AGAIN_PORT $REL/examples/rmcp-floor $LOG_FLOOR_AGAIN_PORT
  LOG_FLOOR_AGAIN_PID=$LAST_PID
}
start_shipped() {
  OUT=$LOGDIR/as-shipped-$round.log start_timed log-oidc $LOG_OIDC_PORT env -u RUST_LOG $REL/oidc-resource-server \
    --issuer http://127.0.0.1:$JWT_ISSUER_PORT --port $LOG_OIDC_PORT
  LOG_OIDC_PID=$LAST_PID
}
start_warn() {
  OUT=$LOGDIR/warn-$round.log start_timed log-oidc-warn $LOG_OIDC_WARN_PORT env RUST_LOG=warn $REL/oidc-resource-server \
    --issuer http://127.0.0.1:$JWT_ISSUER_PORT --port $LOG_OIDC_WARN_PORT
  LOG_OIDC_WARN_PID=$LAST_PID
}
# Each round's order, for starting its servers and for measuring them: a balanced Latin square
# (Williams' design) over four rounds, see below.
ORDERS=("floor shipped floor_again warn" "shipped warn floor floor_again"
  "warn floor_again shipped floor" "floor_again floor warn shipped")
for round in $(seq 1 "$ROUNDS"); do
  # Started in the round's order too: until session 22 the floor was always started first,
  # right after the last round's servers were stopped (BENCHMARKS.md, "The floor against
  # itself": its twin, started second, came out ahead in five of six runs).
  for stack in ${ORDERS[(round - 1) % 4]}; do "start_$stack"; done
  # The ratios measure authentication alone only if every stack answers with the same bytes.
  floor_body=$(answer $LOG_FLOOR_PORT "$JWT_L")
  for check in "$LOG_OIDC_PORT $JWT_L" "$LOG_OIDC_WARN_PORT $JWT_LW" "$LOG_FLOOR_AGAIN_PORT $JWT_L"; do
    body=$(answer $check)
    if [[ $body != "$floor_body" ]]; then
      echo "the floor's answer differs from the one on port ${check%% *}:" >&2
      echo "  floor: $floor_body" >&2; echo "  other: $body" >&2; exit 1
    fi
  done
  # The order within a round follows a balanced Latin square (Williams' design) over four
  # rounds: each stack takes each place once, and each stack comes right after each other stack
  # once. So neither a place in the round (its speed can drift from first to last) nor what ran
  # just before (the as-shipped server can leave ~40 MB of log to be written back) lands on one
  # stack more than another; a ROUNDS that is a multiple of 4 balances it exactly. (Until
  # session 22 the order was reversed every other round: the floor then came right after the
  # as-shipped server in every other round and its twin never did.)
  for stack in ${ORDERS[(round - 1) % 4]}; do "measure_$stack"; done
  kill $LOG_FLOOR_PID $LOG_OIDC_PID $LOG_OIDC_WARN_PID $LOG_FLOOR_AGAIN_PID 2>/dev/null ||
    { echo "a server of round $round exited before the round ended (its log: $LOGDIR)" >&2; KEEP_LOGS=1; exit 1; }
  wait $LOG_FLOOR_PID $LOG_OIDC_PID $LOG_OIDC_WARN_PID $LOG_FLOOR_AGAIN_PID 2>/dev/null || true
done

echo
echo "logging defaults: release profile; wrk -t1 -c$CONNECTIONS -d${DURATION}s after ${WARMUP}s warm-up; median of $ROUNDS rounds, fresh servers in each; logs in $LOGDIR (removed at exit unless KEEP_LOGS=1)"
# "paired": the median over rounds of this stack's req/s over the floor's in the same round.
# "CPU paired": the median over rounds of the floor's server CPU per request over this stack's,
# in the same round: what the stack costs, whatever share of the two cores wrk took. Both pair
# within a round because this machine's speed drifts by 10-20 % from one round to the next. The
# target counts as met only when both reach it. Each comes with its 90 % bootstrap interval
# (the interval in which the median lies in 90 % of resamples of the rounds): how finely this
# run, on this machine, could tell the ratio. "best CPU" (the floor's lowest CPU per request
# over the stack's lowest) is shown but not judged: it rests on one round of each side, and the
# floor's own binary fell to 0.91 by it (BENCHMARKS.md, "The floor against itself"; until
# session 23 it was judged instead of "CPU paired"). With 16 rounds a median's standard error
# is about 3.5 % on this host, as large as the `warn` target's margin; the verdicts
# BENCHMARKS.md records come from 64 rounds (about 1.75 %).
# "floor again" is judged against the `warn` target: were it a stack, would this run have passed
# the floor itself? When it does not, the run's noise alone is enough to fail a stack.
printf '%-24s %10s %9s %9s %9s %7s %7s %11s %11s %11s %11s %9s %9s %10s %5s\n' stack req/s "p50 ms" "p99 ms" non-2xx ratio \
  paired "paired 90%" "CPU us/req" "CPU paired" "CPU 90%" "best CPU" lines/req target met
floor=$(median "${RPS[log-a-rmcp-floor]}")
for name in log-a-rmcp-floor log-b-oidc-as-shipped log-c-oidc-warn log-d-rmcp-floor-again; do
  case $name in
    log-b-oidc-as-shipped) target=0.90 ;;
    log-c-oidc-warn | log-d-rmcp-floor-again) target=0.95 ;;
    *) target="" ;;
  esac
  rps=$(median "${RPS[$name]}")
  ratio=$(awk -v a="$rps" -v f="$floor" 'BEGIN {printf "%.2f", a/f}')
  pairs=$(paired_ratios "${RPS[log-a-rmcp-floor]}" "${RPS[$name]}")
  paired=$(median "$pairs")
  # The floor's CPU over the stack's: paired_ratios divides its second list by its first.
  cpu_pairs=$(paired_ratios "${CPU[$name]}" "${CPU[log-a-rmcp-floor]}")
  cpu_paired=$(median "$cpu_pairs")
  interval=-; cpu_interval=-
  if [[ $name != log-a-rmcp-floor ]]; then interval=$(median_ci "$pairs"); cpu_interval=$(median_ci "$cpu_pairs"); fi
  cpu=$(median "${CPU[$name]}")
  best=$(awk -v f="$(lowest "${CPU[log-a-rmcp-floor]}")" -v c="$(lowest "${CPU[$name]}")" 'BEGIN {printf "%.2f", f/c}')
  lines=-; [[ -z ${LINES[$name]:-} ]] || lines=$(median "${LINES[$name]}")
  met=-; [[ -z $target ]] || met=$(awk -v r="$paired" -v c="$cpu_paired" -v t="$target" 'BEGIN {print (r >= t && c >= t ? "yes" : "NO")}')
  printf '%-24s %10s %9s %9s %9s %7s %7s %11s %11s %11s %11s %9s %9s %10s %5s\n' "$name" "$rps" "$(median "${P50[$name]}")" \
    "$(median "${P99[$name]}")" "$(median "${NON2XX[$name]}" | cut -d. -f1)" "$ratio" "$paired" "$interval" "$cpu" \
    "$cpu_paired" "$cpu_interval" "$best" "$lines" "${target:+>= $target}" "$met"
done
[[ $ROUNDS -ge 64 ]] ||
  echo "note: $ROUNDS rounds; with fewer than 64 a verdict can turn on this host's noise (BENCHMARKS.md, \"Judged over 64 rounds\")."
echo "per round req/s, and server CPU us per request:"
for name in log-a-rmcp-floor log-b-oidc-as-shipped log-c-oidc-warn log-d-rmcp-floor-again; do echo "  $name: ${RPS[$name]}| ${CPU[$name]}"; done
echo "lines/req: lines in the server's log file during the measured run over the requests served."
echo "log-d-rmcp-floor-again: the floor's binary again, a fresh process each round; its ratios are this run's noise."
fi
