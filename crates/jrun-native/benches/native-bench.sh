#!/usr/bin/env bash
# Native runtime benchmark (root). Every figure is the median of $REPS runs (default 3) and
# every target is a ratio against plumbing done by hand in the same run (issue 16):
#   - `jrun up` of 20 jails from cold   <= 1.5x the hand-made plumbing (mesh off)
#                                        <= 2.5x                        (mesh on)
#   - `jrun up` of one jail from cold   <= 3x the hand-made per-jail cost
#   - a no-op `jrun up` of 20 jails     < 20 ms
#   - `jrun down` of 20 jails           <= 1.5x deleting them by hand
#   - how `up` grows: 20, 50, 100, 200 jails (mesh off), per-jail time against the hand's.
# The hand-made plumbing: a bridge namespace, then per jail a namespace with a veth on the
# bridge, an address, a default route and the jail's nft table, with `ip` and `nft`.
# Nothing leaves the machine: every setting with an internet default (the resolver's
# upstream, the relay and its peer, the mirrors) points at a closed local port, as the
# tests' local_env does.
#
# Usage: crates/jrun-native/benches/native-bench.sh [path/to/jrun]   (default: release build)
#   REPS=5 SIZES="20 50" MESH=off|on|both (default both) to change what runs.
set -euo pipefail
cd "$(dirname "$0")/../../.."

JRUN=${1:-}
if [ -z "$JRUN" ]; then
    cargo build --release -q -p jrun
    JRUN=target/release/jrun
fi
JRUN=$(realpath "$JRUN")
[ "$(id -u)" -eq 0 ] || { echo "native-bench: needs root" >&2; exit 1; }
REPS=${REPS:-3}
SIZES=${SIZES:-20 50 100 200}
MESH=${MESH:-both}

WORK=$(mktemp -d /tmp/jrun-bench.XXXXXX)
export JRUN_HOME="$WORK/home" JRUN_RUNTIME=native
export JRUN_DNS_UPSTREAM=127.0.0.1:9 JRUN_RELAY_PEER=none JRUN_RELAY=http://127.0.0.1:9
export JRUN_BSD_MIRROR=http://127.0.0.1:9 JRUN_GITHUB_RAW=http://127.0.0.1:9
BASE="jrb$$"
MAXN=1
for n in 20 $SIZES; do [ "$n" -gt "$MAXN" ] && MAXN=$n; done

cleanup() {
    "$JRUN" stop >/dev/null 2>&1 || true
    hand_delete "$MAXN" 2>/dev/null || true
    ip netns del "$BASE-br" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# Milliseconds (with a fraction) a command takes; its output is dropped, a failure aborts.
time_ms() {
    local t0=$EPOCHREALTIME
    "$@" >/dev/null 2>"$WORK/err" || { echo "native-bench: $* failed:" >&2; cat "$WORK/err" >&2; exit 1; }
    awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", (b - a) * 1000 }'
}
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
verdict() { awk -v a="$1" -v b="$2" 'BEGIN { print (a <= b ? "ok" : "MISSED") }'; }

config() {
    : > "$WORK/stack.ucl"
    for i in $(seq 1 "$1"); do printf 'jail "j%03d" { }\n' "$i" >> "$WORK/stack.ucl"; done
}

# A jail's firewall as jrun renders it (empty mesh_peers).
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

hand_bridge() {
    ip netns add "$BASE-br"
    ip -n "$BASE-br" link add br0 type bridge
    ip -n "$BASE-br" addr add 10.17.89.1/24 dev br0
    ip -n "$BASE-br" link set br0 up
}
hand_create() {
    hand_bridge
    for i in $(seq 1 "$1"); do
        ns="$BASE-$i"
        ip netns add "$ns"
        ip -n "$BASE-br" link add "v$i" type veth peer name eth0 netns "$ns"
        ip -n "$BASE-br" link set "v$i" master br0 up
        ip -n "$ns" link set lo up
        ip -n "$ns" addr add "10.17.89.$((i + 9))/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" route add default via 10.17.89.1
        printf '%s\n' "$RULESET" | ip netns exec "$ns" nft -f -
    done
}
hand_delete() {
    for i in $(seq 1 "$1"); do ip netns del "$BASE-$i" 2>/dev/null || [ "${2:-}" != strict ]; done
}

# hand: creating N jails (bridge included), deleting them, and the bridge alone.
declare -A HC HD
hand_round() {
    local n=$1
    HC[$n]+=" $(time_ms hand_create "$n")"
    HD[$n]+=" $(time_ms hand_delete "$n" strict)"
    ip netns del "$BASE-br"
}
bridge_alone() { hand_bridge; ip netns del "$BASE-br"; }

declare -A J
jrun_up() { config "$1"; time_ms "$JRUN" up "$WORK/stack.ucl"; }
jrun_down() { time_ms "$JRUN" down --yes; }

# One round of every jrun measure with the mesh on or off, on an instance of its own.
jrun_round() {
    local mesh=$1
    export JRUN_MESH_NETWORK=$mesh
    "$JRUN" start >/dev/null
    J[up1.$mesh]+=" $(jrun_up 1)"
    J[down1.$mesh]+=" $(jrun_down)"
    J[up20.$mesh]+=" $(jrun_up 20)"
    J[noop20.$mesh]+=" $(jrun_up 20)"
    J[down20.$mesh]+=" $(jrun_down)"
    if [ "$mesh" = false ]; then
        for n in $SIZES; do
            [ "$n" -eq 20 ] && continue
            J[up$n.$mesh]+=" $(jrun_up "$n")"
            J[down$n.$mesh]+=" $(jrun_down)"
        done
    fi
    "$JRUN" stop >/dev/null
}

# Rounds of the hand-made baseline and of jrun alternate, so that a change in the
# machine's load (it is shared) weighs on both sides of every ratio alike.
BR=""
for _ in $(seq 1 "$REPS"); do
    BR+=" $(time_ms bridge_alone)"
    for n in $(printf '%s\n' 20 $SIZES | sort -nu); do hand_round "$n"; done
    case $MESH in
        off) jrun_round false ;;
        on) jrun_round true ;;
        *) jrun_round false; jrun_round true ;;
    esac
done

m() { median ${J[$1]:-0}; }
hc20=$(median ${HC[20]}); hd20=$(median ${HD[20]}); br=$(median $BR)
perjail=$(awk -v a="$hc20" -v b="$br" 'BEGIN { printf "%.1f", (a - b) / 20 }')

echo "native-bench: medians of $REPS, ms (jrun $JRUN)"
printf '%-46s %9s\n' "hand: bridge namespace alone" "$br"
printf '%-46s %9s\n' "hand: 20 jails (bridge + ns/veth/addr/route/nft)" "$hc20"
printf '%-46s %9s\n' "hand: per jail ((20 jails - bridge) / 20)" "$perjail"
printf '%-46s %9s\n' "hand: deleting 20 jail namespaces" "$hd20"
echo
printf '%-36s %9s %9s %8s  %-8s %s\n' measure jrun baseline ratio target verdict
row() { # label jrun-ms baseline-ms target-ratio
    local r; r=$(ratio "$2" "$3")
    printf '%-36s %9s %9s %8s  <=%-6s %s\n' "$1" "$2" "$3" "$r" "$4" "$(verdict "$r" "$4")"
}
for mesh in false true; do
    [ -n "${J[up20.$mesh]:-}" ] || continue
    tag="mesh $([ $mesh = true ] && echo on || echo off)"
    if [ $mesh = false ]; then limit=1.5; else limit=2.5; fi
    row "up 20 from cold ($tag)" "$(m up20.$mesh)" "$hc20" "$limit"
    row "up 1 from cold ($tag)" "$(m up1.$mesh)" "$perjail" 3
    noop=$(m noop20.$mesh)
    printf '%-36s %9s %9s %8s  <%-7s %s\n' "no-op up of 20 ($tag)" "$noop" - - "20ms" \
        "$(awk -v a="$noop" 'BEGIN { print (a < 20 ? "ok" : "MISSED") }')"
    row "down 20 ($tag)" "$(m down20.$mesh)" "$hd20" 1.5
done
if [ -n "${J[up20.false]:-}" ]; then
    echo
    echo "scaling, mesh off: up from cold and down, per jail (a quadratic term shows as growth)"
    printf '%6s %10s %10s %10s %10s %10s %8s\n' jails "up ms" "up/jail" "hand/jail" "down ms" "down/jail" "ratio"
    for n in $SIZES; do
        up=$(m up$n.false); down=$(m down$n.false); hc=$(median ${HC[$n]})
        hpj=$(awk -v a="$hc" -v b="$br" -v n="$n" 'BEGIN { printf "%.1f", (a - b) / n }')
        upj=$(awk -v a="$up" -v n="$n" 'BEGIN { printf "%.1f", a / n }')
        dj=$(awk -v a="$down" -v n="$n" 'BEGIN { printf "%.1f", a / n }')
        printf '%6d %10s %10s %10s %10s %10s %8s\n' "$n" "$up" "$upj" "$hpj" "$down" "$dj" "$(ratio "$up" "$hc")"
    done
fi
