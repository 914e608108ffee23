#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ (gitignored) with the real datagrams of tests/data/krpc and with
# the inputs kept in tests/fuzz_regressions/<target>/. Safe to run again: it only adds files.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
krpc="$root/tests/data/krpc"
targets=(krpc_decode krpc_oracle compact node_sequence)

for target in "${targets[@]}"; do
    mkdir -p "$here/corpus/$target"
done
# Names repeat across implementations (libtorrent/query-ping-1.bin, mainline/...): prefix
# them. The datagrams also seed `krpc_oracle` and `compact` (their nodes/values strings
# are real entries).
find "$krpc" -name '*.bin' -print0 | while IFS= read -r -d '' file; do
    rel="${file#"$krpc"/}"
    for target in krpc_decode krpc_oracle compact; do
        cp -n "$file" "$here/corpus/$target/krpc-${rel//\//-}"
    done
    # node_sequence reads records (op, dt, src, len_lo, len_hi, payload): wrap the
    # datagram as one "arrives from source 0" record.
    out="$here/corpus/node_sequence/krpc-${rel//\//-}"
    if [ ! -e "$out" ]; then
        len=$(wc -c <"$file")
        if [ "$len" -lt 65536 ]; then
            printf "\\x00\\x01\\x00\\x$(printf %02x $((len & 255)))\\x$(printf %02x $((len >> 8)))" >"$out"
            cat "$file" >>"$out"
        fi
    fi
done
for target in "${targets[@]}"; do
    if [ -d "$root/tests/fuzz_regressions/$target" ]; then
        # libFuzzer takes its default max_len from the largest seed: keep seeds within 4 KiB.
        find "$root/tests/fuzz_regressions/$target" -type f -size -4097c -exec cp -n {} "$here/corpus/$target/" \;
    fi
    echo "seed-corpus: $target: $(find "$here/corpus/$target" -type f | wc -l) files"
done
