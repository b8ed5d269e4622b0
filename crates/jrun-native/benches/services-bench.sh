#!/usr/bin/env bash
# Services benchmark (root), issue 6. Measures in one run, on this machine:
#   1. the example web jail (examples/web): time from `jrun up` returning to the first HTTP
#      answer through its forward on 127.0.0.1, against a bare start of the same command in a
#      fresh network namespace (the service's own start time), measured the same way;
#      target: the difference under 1 s;
#   2. the supervisor with 20 idle services: resident memory (VmRSS) and CPU used over 10 s;
#      targets: under 5 MB and ~0 %.
# Nothing leaves the machine: the resolver's upstream is 127.0.0.1:9, probes go to loopback.
#
# Usage: crates/jrun-native/benches/services-bench.sh [path/to/jrun]   (default: release build)
set -euo pipefail
cd "$(dirname "$0")/../../.."
ROOT=$PWD

JRUN=${1:-}
if [ -z "$JRUN" ]; then
    cargo build --release -q -p jrun
    JRUN=$ROOT/target/release/jrun
fi
[ "$(id -u)" -eq 0 ] || { echo "services-bench: needs root" >&2; exit 1; }

WORK=$(mktemp -d /tmp/jrun-svc-bench.XXXXXX)
export JRUN_HOME="$WORK/home" JRUN_RUNTIME=native JRUN_DNS_UPSTREAM=127.0.0.1:9 JRUN_MESH_NETWORK=false
NS="jrsvcbench$$"
PORT=${BENCH_PORT:-18480}

cleanup() {
    "$JRUN" stop >/dev/null 2>&1 || true
    ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# Polls 127.0.0.1:$1 until an HTTP status line comes back; prints the ms it took from $2 (ns).
PROBE='
wait_http() {
    while :; do
        if exec 3<>/dev/tcp/127.0.0.1/$1; then
            printf "GET / HTTP/1.0\r\n\r\n" >&3
            if read -r -t 2 line <&3 && [[ $line == HTTP/* ]]; then exec 3>&-; break; fi
            exec 3>&-
        fi 2>/dev/null
        sleep 0.005
    done
    echo $(( ($(date +%s%N) - $2) / 1000000 ))
}'

echo "== 1. up → answer through the forward (examples/web) =="
mkdir -p "$WORK/web"
cp -r examples/web/site "$WORK/web/site"
sed "s/host = 8080;/host = $PORT;/" examples/web/jrun.ucl > "$WORK/web/jrun.ucl"
"$JRUN" start >/dev/null
t0=$(date +%s%N)
"$JRUN" up "$WORK/web/jrun.ucl" >/dev/null 2>&1
t_up=$(date +%s%N)
jrun_ms=$(bash -c "$PROBE; wait_http $PORT $t_up")
echo "jrun up took $(( (t_up - t0) / 1000000 )) ms; first answer ${jrun_ms} ms after it returned"

ip netns add "$NS"
ip -n "$NS" link set lo up
base_ms=$(ip netns exec "$NS" bash -c "$PROBE
cd '$WORK/web/site'
t=\$(date +%s%N)
python3 -m http.server $PORT >/dev/null 2>&1 &
wait_http $PORT \$t
kill \$!")
echo "bare start of the same command in a namespace: first answer after ${base_ms} ms"
over=$(( jrun_ms - base_ms ))
echo "RESULT up-to-answer overhead: $over ms (target < 1000 ms, excluding the service's own start)"
"$JRUN" down -y >/dev/null 2>&1

echo "== 2. supervisor with 20 idle services (baseline: the same supervisor with none) =="
sup=$(cut -d' ' -f1 "$JRUN_HOME/run/supervisor.pid")
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$sup/stat"; }
# Prints "<VmRSS kB> <CPU % over 10 s>" of the supervisor.
measure() {
    sleep 1
    local c0 c1 t0 t1 rss
    c0=$(ticks); t0=$(date +%s%N)
    sleep 10
    c1=$(ticks); t1=$(date +%s%N)
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$sup/status")
    echo "$rss $(python3 -c "print(f'{100 * ($c1 - $c0) / $hz / (($t1 - $t0) / 1e9):.2f}')")"
}
read -r rss0 cpu0 < <(measure)
{
    echo 'jail "idle" {'
    echo '  exec {'
    for i in $(seq 1 20); do echo "    s$i { cmd = \"exec sleep 1000$i\"; }"; done
    echo '  }'
    echo '}'
} > "$WORK/idle.ucl"
"$JRUN" up "$WORK/idle.ucl" >/dev/null 2>&1
running=$("$JRUN" status --json | python3 -c 'import json,sys; print(sum(s["state"]=="running" for s in json.load(sys.stdin)["services"]))')
read -r rss1 cpu1 < <(measure)
echo "services running: $running"
echo "supervisor with no services: RSS ${rss0} kB, CPU ${cpu0} %"
echo "supervisor with 20 services: RSS ${rss1} kB, CPU ${cpu1} %"
echo "RESULT 20 idle services add $(( rss1 - rss0 )) kB resident (target < 5120 kB) and $(python3 -c "print(f'{$cpu1 - $cpu0:.2f}')") % CPU (target ~0 %)"
