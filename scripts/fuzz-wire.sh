#!/usr/bin/env bash
# Fuzzes the Wire frame decoder with libFuzzer, over the corpus kept in Tests/Fuzz/corpus.
#
#   scripts/fuzz-wire.sh [SECONDS]   build and fuzz for SECONDS (default 60); new inputs go to a
#                                    scratch corpus, crashes to fuzz-out/wire/ (exit non-zero)
#   scripts/fuzz-wire.sh --seed      regenerate the seed corpus from the current message set and
#                                    bring the kept inputs (found-*, regression-*) to its version
#   scripts/fuzz-wire.sh --bench     decoder throughput (MB/s) in an -O build
#
# The harness and the Wire sources are compiled as one module with plain swiftc, so nothing
# here is a SwiftPM target.
set -euo pipefail
cd "$(dirname "$0")/.."

SWIFTC=${SWIFTC:-swiftc}
OUT=fuzz-out/wire
CORPUS=Tests/Fuzz/corpus
mkdir -p "$OUT"
# Wire needs Sources/Virtio (the JSON form names feature bits, the notification detector
# evaluates the ring rules), compiled into the same module here. The list is taken from the
# directories, as SwiftPM and kernel/Makefile take it, so a file added there cannot be missing
# here; Virtio's C headers are found through their module maps.
mapfile -t WIRE_SOURCES < <(find Sources/Wire Sources/Virtio -name '*.swift' | sort)
SWIFT_FLAGS=(-parse-as-library -I Sources/RingAtomics -I Sources/CHeap)

case "${1:-60}" in
--seed)
    "$SWIFTC" -O "${SWIFT_FLAGS[@]}" -module-name WireSeed "${WIRE_SOURCES[@]}" Tests/Fuzz/WireCorpusSeed.swift -o "$OUT/seed"
    # Seeds are rewritten; found-* and regression-* inputs stay (any bytes are fair input).
    rm -f "$CORPUS"/frame-* "$CORPUS"/body-* "$CORPUS"/stream-* && mkdir -p "$CORPUS"
    shopt -s nullglob
    "$OUT/seed" "$CORPUS" "$CORPUS"/found-* "$CORPUS"/regression-*
    echo "$(ls "$CORPUS" | wc -l) files in $CORPUS"
    ;;
--bench)
    "$SWIFTC" -O -wmo "${SWIFT_FLAGS[@]}" -module-name WireBench "${WIRE_SOURCES[@]}" Tests/Fuzz/WireDecoderBench.swift -o "$OUT/bench"
    "$OUT/bench"
    ;;
-h|--help)
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    ;;
*[!0-9]*|"")
    echo "fuzz-wire: SECONDS must be a whole number, not '$1' (--help for usage)" >&2
    exit 2
    ;;
*)
    SECONDS_TO_RUN=$1
    "$SWIFTC" -O -sanitize=fuzzer,address "${SWIFT_FLAGS[@]}" -module-name WireFuzz \
        "${WIRE_SOURCES[@]}" Tests/Fuzz/WireDecoderFuzz.swift -o "$OUT/fuzz"
    # Fuzz into a scratch copy so the committed corpus stays small; `-merge=1` back by hand if
    # a run finds inputs worth keeping (keep the corpus under 200 files).
    rm -rf "$OUT/corpus" && mkdir -p "$OUT/corpus"
    cp "$CORPUS"/* "$OUT/corpus/"
    # Swift's crash backtracer would stall libFuzzer's crash handling: leave crashes to libFuzzer.
    SWIFT_BACKTRACE=enable=no "$OUT/fuzz" "$OUT/corpus" -max_total_time="$SECONDS_TO_RUN" -max_len=20000 \
        -artifact_prefix="$OUT/" -print_final_stats=1 2>&1 | tail -n 25
    status=${PIPESTATUS[0]}
    if ls "$OUT"/crash-* "$OUT"/leak-* "$OUT"/timeout-* >/dev/null 2>&1; then
        echo "fuzz-wire: crashing inputs in $OUT" >&2
        exit 1
    fi
    exit "$status"
    ;;
esac
