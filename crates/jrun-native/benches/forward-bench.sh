#!/usr/bin/env bash
# Host port forward under load (root), issue 17 (D8). In one run, on this machine: one jail
# serving HTTP (an asyncio server, forward/server.py), then CLIENTS concurrent clients
# (forward/client.py: each makes REQUESTS sequential GETs on fresh connections) alternately
#   - through the forward: 127.0.0.1:PORT on the host, relayed by the supervisor, and
#   - directly to the jail's address from the instance's VM namespace (no relay),
# ROUNDS times each. Prints each round and, per path, all rounds together: errors (an
# "empty" reply is a connection closed before any answer), p50, p99, listen-queue overflows
# (TcpExtListenOverflows) and the ratio of the p99s.
# Target: 600 clients, no error through the forward, its p99 within 2x of direct.
# Only loopback and the instance's own namespaces see traffic; the resolver's upstream is
# 127.0.0.1:9.
#
# Usage: crates/jrun-native/benches/forward-bench.sh [path/to/jrun]   (default: release build)
#        CLIENTS=600 REQUESTS=3 ROUNDS=3 BENCH_PORT=18490 override the defaults.
set -euo pipefail
cd "$(dirname "$0")/../../.."
ROOT=$PWD
HERE=$ROOT/crates/jrun-native/benches/forward

JRUN=${1:-}
if [ -z "$JRUN" ]; then
    cargo build --release -q -p jrun
    JRUN=$ROOT/target/release/jrun
fi
[ "$(id -u)" -eq 0 ] || { echo "forward-bench: needs root" >&2; exit 1; }
CLIENTS=${CLIENTS:-600}
REQUESTS=${REQUESTS:-3}
ROUNDS=${ROUNDS:-3}
PORT=${BENCH_PORT:-18490}

WORK=$(mktemp -d /tmp/jrun-fwd-bench.XXXXXX)
export JRUN_HOME="$WORK/home" JRUN_RUNTIME=native JRUN_DNS_UPSTREAM=127.0.0.1:9 JRUN_MESH_NETWORK=false

cleanup() {
    "$JRUN" stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

cp "$HERE/server.py" "$WORK/server.py"
cat > "$WORK/bench.ucl" <<UCL
jail "web" {
  forward { http { host = $PORT; jail = 8080; } }
  exec { http { cmd = "exec python3 $WORK/server.py 8080"; } }
}
UCL
"$JRUN" start >/dev/null
"$JRUN" up "$WORK/bench.ucl" >/dev/null 2>"$WORK/up.log" || { cat "$WORK/up.log" >&2; exit 1; }
read -r VM IP < <("$JRUN" status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(s["instance"]["namespace"], next(j["ip"] for j in s["jails"] if j["name"] == "web"))')
JAIL_NS="${VM%-vm}-j-web"
ulimit -n 65536 2>/dev/null || true

# TcpExtListenOverflows of the host namespace (the forward's listener) plus the jail's.
overflows() {
    { cat /proc/net/netstat; ip netns exec "$JAIL_NS" cat /proc/net/netstat; } | awk '
        /^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "ListenOverflows") c = i; h = 1; next }
                     s += $c; h = 0 }
        END { print s + 0 }'
}

run() { # <path> <json out>
    local before after
    before=$(overflows)
    if [ "$1" = forward ]; then
        python3 "$HERE/client.py" 127.0.0.1 "$PORT" "$CLIENTS" "$REQUESTS" > "$2"
    else
        ip netns exec "$VM" python3 "$HERE/client.py" "$IP" 8080 "$CLIENTS" "$REQUESTS" > "$2"
    fi
    after=$(overflows)
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["overflows"]=int(sys.argv[2]); json.dump(d, open(sys.argv[1], "w"))' "$2" $(( after - before ))
    echo "$1 round: $(cat "$2")"
    sleep 2   # TIME_WAIT and relays drain between rounds
}

echo "== $CLIENTS clients x $REQUESTS requests, $ROUNDS rounds per path (jail $IP, forward 127.0.0.1:$PORT) =="
for r in $(seq 1 "$ROUNDS"); do
    run direct "$WORK/direct-$r.json"
    run forward "$WORK/forward-$r.json"
done
sup=$(cut -d' ' -f1 "$JRUN_HOME/run/supervisor.pid")
echo "supervisor after the runs: $(awk '/VmRSS|Threads/ {printf "%s %s ", $1, $2}' "/proc/$sup/status")"

python3 - "$WORK" "$ROUNDS" <<'PY'
import json, sys
work, rounds = sys.argv[1], int(sys.argv[2])
def load(path):
    return [json.load(open(f"{work}/{path}-{r}.json")) for r in range(1, rounds + 1)]
res = {p: load(p) for p in ("direct", "forward")}
for p, rs in res.items():
    print(f"{p:8} requests {sum(r['requests'] for r in rs)}, errors {sum(r['errors'] for r in rs)}, "
          f"overflows {sum(r['overflows'] for r in rs)}, rps {'/'.join(str(r['rps']) for r in rs)}, "
          f"p50 {'/'.join(str(r['p50']) for r in rs)} ms, p99 {'/'.join(str(r['p99']) for r in rs)} ms")
med = lambda xs: sorted(xs)[len(xs) // 2]
d99 = med([r["p99"] for r in res["direct"]])
f99 = med([r["p99"] for r in res["forward"]])
ferr = sum(r["errors"] for r in res["forward"])
ratio = f99 / d99 if d99 else float("inf")
ok = ferr == 0 and ratio <= 2
print(f"RESULT forward p99 {f99} ms vs direct {d99} ms (median of rounds): {ratio:.2f}x (target <= 2x); "
      f"forward errors {ferr} (target 0): {'PASS' if ok else 'FAIL'}")
PY
