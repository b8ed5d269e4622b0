#!/bin/sh
# Whole-process time of `ucl2json FILE` against libucl 0.7.3's own `ucl_tool -f
# compact_json` (parse and print) on the benches' generated 40 000-jail config.
# Target: ucl2json takes at most half of ucl_tool's time (median of RUNS each, run
# interleaved, since the machine may be shared).
#
# ucl_tool is built with cc -O2 from the same C sources as the differential test
# (LIBUCL_SRC, or cargo's registry after tests/libucl/fetch-source.sh); everything goes
# under the target directory. UCL2JSON=path times another ucl2json build instead.
# Usage: sh crates/ucl/benches/ucl2json-vs-ucl_tool.sh [RUNS]
set -eu
runs=${1:-5}
root=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
out=$target/ucl-bench
mkdir -p "$out"

src=${LIBUCL_SRC:-}
if [ -z "$src" ]; then
    src=$(sh crates/ucl/tests/libucl/fetch-source.sh)
fi
cc -O2 -w -I"$src/include" -I"$src/src" -I"$src/uthash" -I"$src/klib" \
    -o "$out/ucl_tool" "$src/utils/ucl-tool.c" "$src"/src/*.c -lm

cargo build --quiet --release -p ucl --bin ucl2json --example gen-jails
"$target/release/examples/gen-jails" 40000 > "$out/jails.ucl"
ucl2json=${UCL2JSON:-$target/release/ucl2json}
ucl_tool=$out/ucl_tool
input=$out/jails.ucl

# Both must accept the file before anything is timed.
"$ucl_tool" -i "$input" -f compact_json > /dev/null
"$ucl2json" "$input" > /dev/null

now() { date +%s%N; }
# One run of "$@", output discarded: appends its wall milliseconds to the file $1 and
# its CPU milliseconds (user + system, from GNU time, 10 ms steps) to $1.cpu.
time_ms() {
    log=$1
    shift
    t0=$(now)
    /usr/bin/time -f "%U %S" -o "$out/time.txt" "$@" > /dev/null
    t1=$(now)
    echo $(( (t1 - t0) / 1000000 )) >> "$log"
    awk '{ printf "%d\n", ($1 + $2) * 1000 + 0.5 }' "$out/time.txt" >> "$log.cpu"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

: > "$out/ours.ms"
: > "$out/theirs.ms"
: > "$out/ours.ms.cpu"
: > "$out/theirs.ms.cpu"
i=0
while [ "$i" -lt "$runs" ]; do
    if [ $((i % 2)) -eq 0 ]; then
        time_ms "$out/theirs.ms" "$ucl_tool" -i "$input" -f compact_json
        time_ms "$out/ours.ms" "$ucl2json" "$input"
    else
        time_ms "$out/ours.ms" "$ucl2json" "$input"
        time_ms "$out/theirs.ms" "$ucl_tool" -i "$input" -f compact_json
    fi
    i=$((i + 1))
done
ours=$(median < "$out/ours.ms")
theirs=$(median < "$out/theirs.ms")
ours_cpu=$(median < "$out/ours.ms.cpu")
theirs_cpu=$(median < "$out/theirs.ms.cpu")
size=$(wc -c < "$input")
verdict=$(awk -v o="$ours" -v t="$theirs" 'BEGIN { print (o <= t / 2) ? "ok" : "MISSED" }')
ratio=$(awk -v o="$ours" -v t="$theirs" 'BEGIN { printf "%.2f", o / t }')
echo "input: $size bytes; $runs interleaved runs each (ms): ours $(tr '\n' ' ' < "$out/ours.ms"), ucl_tool $(tr '\n' ' ' < "$out/theirs.ms")"
cpu_ratio=$(awk -v o="$ours_cpu" -v t="$theirs_cpu" 'BEGIN { printf "%.2f", o / t }')
echo "CPU time (user + system), medians: ucl2json $ours_cpu ms, ucl_tool $theirs_cpu ms: ucl2json/ucl_tool = $cpu_ratio"
echo "wall time, medians: ucl2json $ours ms, ucl_tool -f compact_json $theirs ms: ucl2json/ucl_tool = $ratio (target <= 0.50: $verdict)"
