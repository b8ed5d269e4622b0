#!/usr/bin/env bash
# Native runtime benchmark (root). Measures in one run, on this machine:
#   - `jrun up` of 20 jails from cold, a no-op `up`, adding one jail to the running 20,
#     `jrun down` of all 21;
#   - a baseline creating and deleting the same 20 namespaces + veths with raw `ip` commands.
# Targets (issue 5): 20 jails up < 3 s; no-op up < 100 ms; jrun's namespace plumbing within
# 2x the raw baseline. Nothing leaves the machine: the resolver's upstream is 127.0.0.1.
#
# Usage: crates/jrun-native/benches/native-bench.sh [path/to/jrun]   (default: release build)
set -euo pipefail
cd "$(dirname "$0")/../../.."

JRUN=${1:-}
if [ -z "$JRUN" ]; then
    cargo build --release -q -p jrun
    JRUN=target/release/jrun
fi
[ "$(id -u)" -eq 0 ] || { echo "native-bench: needs root" >&2; exit 1; }

WORK=$(mktemp -d /tmp/jrun-bench.XXXXXX)
export JRUN_HOME="$WORK/home" JRUN_RUNTIME=native JRUN_DNS_UPSTREAM=127.0.0.1:9
MESH=${JRUN_MESH_NETWORK:-true}
export JRUN_MESH_NETWORK=$MESH
BASE="jrbench$$"

cleanup() {
    "$JRUN" stop >/dev/null 2>&1 || true
    for i in $(seq 1 20); do ip netns del "$BASE-$i" 2>/dev/null || true; done
    ip netns del "$BASE-br" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

now_ms() { date +%s%3N; }
time_ms() { local t0; t0=$(now_ms); "$@" >/dev/null 2>&1; echo $(( $(now_ms) - t0 )); }

config() {
    : > "$WORK/stack.ucl"
    for i in $(seq 1 "$1"); do printf 'jail "j%02d" { }\n' "$i" >> "$WORK/stack.ucl"; done
}

# A jail's firewall as jrun renders it (empty mesh_peers), for the second baseline.
RULESET='table inet jrun
delete table inet jrun
table inet jrun {
  set mesh_peers {
    type ipv6_addr
  }
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "ygg0" ct state established,related accept
    iifname "ygg0" ip6 saddr @mesh_peers accept
    iifname "ygg0" counter drop
  }
}'

# Raw baseline: a bridge namespace, 20 namespaces each with a veth on the bridge, an
# address and a default route (and, with `fw`, the jail's nft ruleset); then delete them.
baseline() {
    ip netns add "$BASE-br"
    ip -n "$BASE-br" link add br0 type bridge
    ip -n "$BASE-br" addr add 10.17.89.1/24 dev br0
    ip -n "$BASE-br" link set br0 up
    for i in $(seq 1 20); do
        ns="$BASE-$i"
        ip netns add "$ns"
        ip -n "$BASE-br" link add "v$i" type veth peer name eth0 netns "$ns"
        ip -n "$BASE-br" link set "v$i" master br0 up
        ip -n "$ns" link set lo up
        ip -n "$ns" addr add "10.17.89.$((i + 9))/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" route add default via 10.17.89.1
        if [ "${1:-}" = fw ]; then printf '%s\n' "$RULESET" | ip netns exec "$ns" nft -f -; fi
    done
    for i in $(seq 1 20); do ip netns del "$BASE-$i"; done
    ip netns del "$BASE-br"
}

"$JRUN" start >/dev/null
# The fixed cost of a run (config, state, probe, resolver reload): an up of one jail.
config 1
up1=$(time_ms "$JRUN" up "$WORK/stack.ucl")
"$JRUN" down --yes >/dev/null
config 20
up20=$(time_ms "$JRUN" up "$WORK/stack.ucl")
noop=$(time_ms "$JRUN" up "$WORK/stack.ucl")
config 21
add1=$(time_ms "$JRUN" up "$WORK/stack.ucl")
down=$(time_ms "$JRUN" down --yes)
"$JRUN" stop >/dev/null
raw=$(time_ms baseline)
rawfw=$(time_ms baseline fw)

# Whole commands against the raw plumbing: up of 20 plus down of all.
total=$(( up20 + down ))
ratio=$(awk -v a="$total" -v b="$raw" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
# jrun's per-jail plumbing alone: the marginal cost of 19 more jails (up of 20 minus up of
# one), scaled to 20, plus the down.
marginal=$(awk -v a="$up20" -v b="$up1" -v d="$down" 'BEGIN { printf "%d", (a - b) * 20 / 19 + d }')
mratio=$(awk -v a="$marginal" -v b="$raw" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
fwratio=$(awk -v a="$marginal" -v b="$rawfw" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
verdict() { if [ "$1" -le "$2" ]; then echo "ok"; else echo "MISSED"; fi; }

printf '%-44s %8s  %s\n' "measure (mesh=$MESH)" "ms" "target"
printf '%-44s %8d  < 3000 ms  %s\n' "jrun up, 20 jails from cold" "$up20" "$(verdict "$up20" 3000)"
printf '%-44s %8d  < 100 ms   %s\n' "jrun up, no change" "$noop" "$(verdict "$noop" 100)"
printf '%-44s %8d\n' "jrun up, one jail added to 20" "$add1"
printf '%-44s %8d\n' "jrun down, all 21" "$down"
printf '%-44s %8d\n' "raw ip: 20 namespaces + veths, create+delete" "$raw"
printf '%-44s %8d\n' "jrun up, 1 jail from cold (fixed cost)" "$up1"
printf '%-44s %8s\n' "ratio whole commands (up 20 + down) / raw" "$ratio"
printf '%-44s %8d\n' "raw ip + the jail's nft ruleset each" "$rawfw"
printf '%-44s %8s\n' "ratio per-jail work / raw ip only" "$mratio"
printf '%-44s %8s  <= 2.00   %s\n' "ratio per-jail work / raw ip + nft" "$fwratio" \
    "$(awk -v r="$fwratio" 'BEGIN { print (r <= 2.0 ? "ok" : "MISSED") }')"
