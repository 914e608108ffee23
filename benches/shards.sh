#!/usr/bin/env bash
# Bootstrap shards: does a second shard add a second shard's worth of answers? `btdht
# bootstrap --threads T` (T = 1, then 2, alternating for ROUNDS rounds) loaded with a full
# pool of POOL_NODES nodes answers `btdht bench` (find_node for random targets, 64 sources so
# that SO_REUSEPORT spreads them over the shards). Nothing is pinned: the shards and the
# generator share the machine's cores. Per run it prints answered/s, the server's CPU (cores
# used over the measured seconds, from /proc/PID/stat), answers per server core-second, and
# from the server's last stats line the snapshot refreshes (answers read the pool's published
# snapshot without a lock; a shard takes a new one after each rebuild) and the pool lock's
# contention counters (read and write acquisitions off the answer path that had to wait). If
# sharing the pool costs nothing, answers per core-second are the same for T = 1 and T = 2.
#
# Usage: benches/shards.sh [ROUNDS] [SECONDS]
# Env:   BTDHT (default: cargo build --release), POOL_NODES (1000000), POOL_FILE (a saved
#        pool; default: written by `cargo bench --bench pool_load -- write`), QUERY (find-node),
#        WINDOW (256), THREADS ("1 2").
# Only 127.0.0.0/8 is used; the server runs with --rate-limit off.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${1:-3}
SECS=${2:-4}
QUERY=${QUERY:-find-node}
WINDOW=${WINDOW:-256}
THREADS=${THREADS:-1 2}
POOL_NODES=${POOL_NODES:-1000000}
if [[ -z ${BTDHT:-} ]]; then
    cargo build --release --quiet
    BTDHT=${CARGO_TARGET_DIR:-target}/release/btdht
fi
work=$(mktemp -d)
server_pid=""
cleanup() {
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
trap 'cleanup; rm -rf "$work"' EXIT
if [[ -z ${POOL_FILE:-} ]]; then
    POOL_FILE=$work/pool.bin
    POOL_NODES=$POOL_NODES cargo bench --quiet --bench pool_load -- write "$POOL_FILE" >/dev/null
fi

ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
port=48000
: >"$work/runs"
for round in $(seq 1 "$ROUNDS"); do
    for t in $THREADS; do
        port=$((port + 1))
        cp "$POOL_FILE" "$work/state.bin"
        "$BTDHT" -q bootstrap --bind "127.0.1.1:$port" --threads "$t" --allow-private \
            --rate-limit off --bootstrap 127.0.1.1:9 --capacity "$POOL_NODES" \
            --state "$work/state.bin" --stats 3600 --json >"$work/stats.out" &
        server_pid=$!
        for _ in $(seq 1 100); do
            "$BTDHT" -q ping "127.0.1.1:$port" --allow-private --bind 127.0.1.2:0 --timeout 1 \
                >/dev/null 2>&1 && break
            sleep 0.1
        done
        "$BTDHT" bench "127.0.1.1:$port" --query "$QUERY" --seconds "$SECS" --warmup 1 \
            --window "$WINDOW" --sources 64 >"$work/bench.json" &
        bench_pid=$!
        sleep 1
        before=$(cpu_ticks "$server_pid"); t0=$(date +%s.%N)
        sleep "$SECS"
        after=$(cpu_ticks "$server_pid"); t1=$(date +%s.%N)
        wait "$bench_pid" || true
        cleanup
        python3 - "$round" "$t" "$work/bench.json" "$work/stats.out" "$before" "$after" "$t0" "$t1" "$ticks" \
            >>"$work/runs" <<'PY'
import json, sys
rnd, t, bench, stats, before, after, t0, t1, ticks = sys.argv[1:]
b = json.load(open(bench))
last = [json.loads(l) for l in open(stats) if l.startswith("{")][-1]
wall = float(t1) - float(t0)
cores = (int(after) - int(before)) / int(ticks) / wall
rate = b["answered_per_sec"]
per_core = rate / cores if cores else 0
answered = max(1, last["answered"])
print(json.dumps({"round": int(rnd), "threads": int(t), "answered_per_sec": rate, "loss": b["loss"],
                  "server_cores": cores, "answers_per_core_sec": per_core,
                  "generator_cpu_share": b.get("generator_cpu_share"),
                  "snapshot_refreshes": last["snapshot_refreshes"],
                  "pool_read_waits": last["pool_read_waits"], "pool_write_waits": last["pool_write_waits"],
                  "read_waits_per_million": 1e6 * last["pool_read_waits"] / answered,
                  "shards": [s["answered"] for s in last["shards"]]}))
PY
        tail -1 "$work/runs"
    done
done
python3 - "$work/runs" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in runs:
    by.setdefault(r["threads"], []).append(r)
print()
print("| --threads | answered/s (median) | server cores | answers per core-second | snapshot refreshes | pool read waits per million answers |")
print("|---:|---:|---:|---:|---:|---:|")
med = {}
for t, rs in sorted(by.items()):
    m = lambda k: statistics.median(r[k] for r in rs)
    med[t] = m("answers_per_core_sec")
    print(f"| {t} | {m('answered_per_sec'):,.0f} | {m('server_cores'):.2f} | {med[t]:,.0f} | {m('snapshot_refreshes'):.0f} | {m('read_waits_per_million'):.1f} |")
if 1 in med and len(med) > 1:
    for t in sorted(med):
        if t != 1:
            print(f"\nanswers per core-second, --threads {t} / --threads 1: {med[t] / med[1]:.2f}")
PY
