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
"$ucl_tool" -i "$input" -f compact_json > "$out/ucl_tool.json"
"$ucl2json" "$input" > "$out/ucl2json.json"

now() { date +%s%N; }
# Milliseconds one run of "$@" takes, output discarded.
time_ms() {
    t0=$(now)
    "$@" > /dev/null
    t1=$(now)
    echo $(( (t1 - t0) / 1000000 ))
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

: > "$out/ours.ms"
: > "$out/theirs.ms"
i=0
while [ "$i" -lt "$runs" ]; do
    if [ $((i % 2)) -eq 0 ]; then
        time_ms "$ucl_tool" -i "$input" -f compact_json >> "$out/theirs.ms"
        time_ms "$ucl2json" "$input" >> "$out/ours.ms"
    else
        time_ms "$ucl2json" "$input" >> "$out/ours.ms"
        time_ms "$ucl_tool" -i "$input" -f compact_json >> "$out/theirs.ms"
    fi
    i=$((i + 1))
done
ours=$(median < "$out/ours.ms")
theirs=$(median < "$out/theirs.ms")
size=$(wc -c < "$input")
verdict=$(awk -v o="$ours" -v t="$theirs" 'BEGIN { print (o <= t / 2) ? "ok" : "MISSED" }')
ratio=$(awk -v o="$ours" -v t="$theirs" 'BEGIN { printf "%.2f", o / t }')
echo "input: $size bytes; $runs interleaved runs each (ms): ours $(tr '\n' ' ' < "$out/ours.ms"), ucl_tool $(tr '\n' ' ' < "$out/theirs.ms")"
echo "ucl2json $ours ms, ucl_tool -f compact_json $theirs ms: ucl2json/ucl_tool = $ratio (target <= 0.50: $verdict)"
