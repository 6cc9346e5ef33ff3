#!/usr/bin/env bash
# Fuzzes the Wire frame decoder with libFuzzer, over the corpus kept in Tests/Fuzz/corpus.
#
#   scripts/fuzz-wire.sh [SECONDS]   build and fuzz for SECONDS (default 60); new inputs go to a
#                                    scratch corpus, crashes to fuzz-out/wire/ (exit non-zero)
#   scripts/fuzz-wire.sh --seed      regenerate the seed corpus from the current message set
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
# The JSON form names feature bits, and the notification detector evaluates the ring rules, from Sources/Virtio: compiled into the same module here.
WIRE_SOURCES=(Sources/Wire/*.swift Sources/Virtio/VirtioSpec.swift Sources/Virtio/VirtioFeatureNames.swift Sources/Virtio/virtqueue/Virtqueue.swift Sources/Virtio/virtqueue/split/SplitVirtqueueLayout.swift Sources/Virtio/virtqueue/VirtqueueFaults.swift)

case "${1:-60}" in
--seed)
    "$SWIFTC" -O -parse-as-library -module-name WireSeed "${WIRE_SOURCES[@]}" Tests/Fuzz/WireCorpusSeed.swift -o "$OUT/seed"
    # Seeds are rewritten; found-* and regression-* inputs stay (any bytes are fair input).
    rm -f "$CORPUS"/frame-* "$CORPUS"/body-* "$CORPUS"/stream-* && mkdir -p "$CORPUS"
    "$OUT/seed" "$CORPUS"
    echo "$(ls "$CORPUS" | wc -l) seed files in $CORPUS"
    ;;
--bench)
    "$SWIFTC" -O -wmo -parse-as-library -module-name WireBench "${WIRE_SOURCES[@]}" Tests/Fuzz/WireDecoderBench.swift -o "$OUT/bench"
    "$OUT/bench"
    ;;
*)
    SECONDS_TO_RUN=$1
    "$SWIFTC" -O -sanitize=fuzzer,address -parse-as-library -module-name WireFuzz \
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
