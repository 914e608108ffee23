#!/usr/bin/env bash
# Query throughput on loopback: raw UDP echo (batched like the servers: the physical-limit
# baseline), raw echo with one system call per datagram (echo-1, for reference), libtorrent
# (relaxed limits), `btdht node`, `btdht bootstrap` (empty pool), `btdht bootstrap` loaded with
# a full pool of POOL_NODES nodes (bootstrap1m, the production case: its find_node and
# get_peers answers are the pool's closest nodes to random targets) and a raw echo whose
# replies are padded to the size of bootstrap1m's answers (echo-pad, measured at start with
# one short run), each loaded in turn by `btdht bench` (same load), ROUNDS rounds of
# alternation. The server runs on core 0 (taskset -c 0), the generator on core 1.
# Prints each run's answered/s and the server's CPU use (from /proc/PID/stat: the share of
# its core it used, and its CPU microseconds per answered query, which shows where the time
# goes even when the generator or a noisy neighbour limits the rate), then per contender the
# median (min-max) and the ratios of medians against libtorrent and raw echo, and
# bootstrap1m's share of the matched (padded) echo.
# The node is also measured loaded as in production (nodefull): `btdht node` started from a
# state file that this script writes (a full routing table of NODE_DEPTH+1 buckets of 8 nodes
# on 127.3.0.0/16 that never answer, and 50 stored peers for one info-hash), against a raw
# echo padded to the size of its answers (echo-nodefull, measured at start like echo-pad).
# With QUERY=find-node it answers from the full table; with QUERY=get-peers, from the full
# table and no values (random info-hashes); with QUERY=get-peers VALUES=1, every query asks
# for the stored info-hash and is answered with the 50 values and the 8 closest nodes.
#
# Usage: benches/throughput.sh [ROUNDS] [SECONDS]
# Env:   QUERY=ping|find-node|get-peers|mix (default ping), or several separated by spaces
#        (get-peers-50 is get-peers with VALUES=1), or all (ping find-node get-peers
#        get-peers-50): one run per query, then a table of every ratio; WINDOW (256), SOURCES (64),
#        BTDHT=path/to/btdht (default: builds it with cargo build --release),
#        SKIP_LT=1 to leave libtorrent out (else tests/peers/setup.sh installs it once),
#        PROFILE=DIR to record each server with `perf record -e cpu-clock -g` into DIR (one
#        file per run) and print its split between kernel and user space and its top symbols,
#        SKIP_POOL=1 to leave out bootstrap1m and echo-pad, POOL_NODES (1000000) and
#        POOL_FILE (a saved pool to load; default: written once by
#        `cargo bench --bench pool_load -- write`, nodes on 127.0.0.0/8), PAD (echo-pad's
#        reply size; default: measured),
#        SKIP_NODEFULL=1 to leave out nodefull and echo-nodefull, VALUES=1 (see above),
#        NODE_DEPTH (20), PAD_NODE (echo-nodefull's reply size; default: measured),
#        CONTENDERS="name ..." to run only these (e.g. "echo-nodefull nodefull"),
#        CALLGRIND=1 to also count the user-space instructions per answer of the krpc_codec
#        hot path's matching workloads under valgrind (bootstrap1m's with QUERY find-node
#        or get-peers, and the full node's: node/ping_ro, node/find_node_full,
#        node/get_peers_full or, with VALUES=1, node/get_peers_50).
# Only 127.0.0.0/8 is used. Both btdht servers run with --rate-limit off (the per-IP limit,
# 20/s, would otherwise answer each of the 64 sources 20 times a second).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${1:-5}
SECONDS_PER_RUN=${2:-4}
QUERY=${QUERY:-ping}

# Several queries in one run: the script runs itself once per query with the same build and
# pool file, then prints one table of every ratio.
if [[ $QUERY == all ]]; then
    QUERY="ping find-node get-peers get-peers-50"
fi
if [[ $QUERY == *" "* ]]; then
    if [[ -z ${BTDHT:-} ]]; then
        cargo build --release --quiet
        BTDHT=$(mktemp -d)/btdht
        cp "${CARGO_TARGET_DIR:-target}/release/btdht" "$BTDHT"
        export BTDHT
    fi
    summaries=$(mktemp -d)
    if [[ -z ${SKIP_POOL:-} && -z ${POOL_FILE:-} ]]; then
        POOL_FILE=$summaries/pool.bin
        POOL_NODES=${POOL_NODES:-1000000} cargo bench --quiet --bench pool_load -- write \
            "$POOL_FILE" >/dev/null
        export POOL_FILE
    fi
    for query in $QUERY; do
        echo "=== QUERY=$query"
        if [[ $query == get-peers-50 ]]; then
            QUERY=get-peers VALUES=1 SUMMARY_JSON=$summaries/$query.json "$0" "$ROUNDS" "$SECONDS_PER_RUN"
        else
            QUERY=$query VALUES= SUMMARY_JSON=$summaries/$query.json "$0" "$ROUNDS" "$SECONDS_PER_RUN"
        fi
    done
    python3 - "$summaries" $QUERY <<'PY'
import json, os, sys
folder, queries = sys.argv[1], sys.argv[2:]
print("\n| query | server | answered/s (median) | server CPU per answer | / libtorrent | / matched echo | matched echo's CPU per answer / server's |")
print("|---|---|---:|---:|---:|---:|---:|")
for q in queries:
    path = os.path.join(folder, q + ".json")
    if not os.path.exists(path):
        continue
    s = json.load(open(path))
    for name, c in s["contenders"].items():
        lt = s["vs_libtorrent"].get(name)
        me = s["vs_matched_echo"].get(name)
        fmt = lambda r: f"{r['median']:.2f}x ({r['min']:.2f}-{r['max']:.2f})" if r else ""
        cpu = s.get("cpu_vs_matched_echo", {}).get(name)
        cpu = f"{cpu:.2f}x" if cpu else ""
        print(f"| {q} | {name} | {c['median']:,.0f} | {c['us']:.2f} µs | {fmt(lt)} | {fmt(me)} | {cpu} |")
PY
    rm -rf "$summaries"
    exit 0
fi
WINDOW=${WINDOW:-256}
SOURCES=${SOURCES:-64}
WARMUP=1

if [[ -z ${BTDHT:-} ]]; then
    cargo build --release --quiet
    dir=${CARGO_TARGET_DIR:-target}
    BTDHT=$(mktemp -d)/btdht
    cp "$dir/release/btdht" "$BTDHT"
fi
PY=""
if [[ -z ${SKIP_LT:-} ]]; then
    PY=$(tests/peers/setup.sh)
fi
work=$(mktemp -d)
if [[ -z ${SKIP_POOL:-} && -z ${POOL_FILE:-} ]]; then
    POOL_FILE=$work/pool.bin
    POOL_NODES=${POOL_NODES:-1000000} cargo bench --quiet --bench pool_load -- write "$POOL_FILE" \
        >/dev/null
fi

server_pid=""
cleanup() {
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
}
trap 'cleanup; rm -rf "$work"' EXIT

# The loaded node's state: ids at every depth of the table (8 sharing exactly d leading bits
# with the node's id, for d = 0..NODE_DEPTH), so that every bucket is full, and 50 peers of
# one info-hash (one per host, as the store keeps them).
NODE_DEPTH=${NODE_DEPTH:-20}
NODE_STATE=$work/node-state.json
INFO_HASH=$(python3 - "$NODE_STATE" "$NODE_DEPTH" <<'PY'
import json, random, sys
path, depth = sys.argv[1], int(sys.argv[2])
rng = random.Random(0x5eed)
own = rng.getrandbits(160)
nodes = []
for d in range(depth + 1):
    for _ in range(8):
        # The first d bits as own's, bit d flipped, the rest random.
        bit = 1 << (159 - d)
        high = (own >> (160 - d) << (160 - d)) if d else 0
        node = high | ((own & bit) ^ bit) | (rng.getrandbits(160) & (bit - 1))
        i = len(nodes)
        nodes.append({"id": f"{node:040x}", "addr": f"127.3.{i // 250}.{i % 250 + 1}:6881",
                      "since_response": 0})
info_hash = f"{rng.getrandbits(160):040x}"
peers = [{"info_hash": info_hash, "addr": f"127.4.0.{i + 1}:6881", "seed": False, "age": 0}
         for i in range(50)]
with open(path, "w") as f:
    json.dump({"btdht_state": 1, "id": f"{own:040x}", "nodes": nodes, "peers": peers}, f)
print(info_hash)
PY
)
bench_extra=()
if [[ -n ${VALUES:-} ]]; then
    [[ $QUERY == get-peers ]] || { echo "VALUES=1 needs QUERY=get-peers" >&2; exit 2; }
    bench_extra=(--info-hash "$INFO_HASH")
fi

port=47000
start_server() { # name -> starts it on 127.0.1.1:$port, sets server_pid
    local life=$((SECONDS_PER_RUN + WARMUP + 10))
    case $1 in
        echo) taskset -c 0 "$BTDHT" -q udp-echo --bind "127.0.1.1:$port" --seconds "$life" & ;;
        echo-1) taskset -c 0 "$BTDHT" -q udp-echo --per-datagram --bind "127.0.1.1:$port" --seconds "$life" & ;;
        libtorrent) taskset -c 0 "$PY" tests/peers/lt_node.py --listen "127.0.1.1:$port" --duration "$life" >/dev/null & ;;
        node) taskset -c 0 "$BTDHT" -q node --bind "127.0.1.1:$port" --allow-private --rate-limit off --bootstrap 127.0.1.1:9 & ;;
        bootstrap) taskset -c 0 "$BTDHT" -q bootstrap --bind "127.0.1.1:$port" --allow-private --rate-limit off --bootstrap 127.0.1.1:9 --capacity 100000 & ;;
        echo-pad) taskset -c 0 "$BTDHT" -q udp-echo --pad "$PAD" --bind "127.0.1.1:$port" --seconds "$life" & ;;
        echo-nodefull) taskset -c 0 "$BTDHT" -q udp-echo --pad "$PAD_NODE" --bind "127.0.1.1:$port" --seconds "$life" & ;;
        nodefull)
            # A copy: the node saves its state back into the file.
            cp "$NODE_STATE" "$work/node-run.json"
            taskset -c 0 "$BTDHT" -q node --bind "127.0.1.1:$port" --allow-private --rate-limit off --bootstrap 127.0.1.1:9 --state "$work/node-run.json" & ;;
        bootstrap1m)
            # A copy: the server saves its pool back into the file when it stops.
            cp "$POOL_FILE" "$work/state.bin"
            taskset -c 0 "$BTDHT" -q bootstrap --bind "127.0.1.1:$port" --allow-private --rate-limit off --bootstrap 127.0.1.1:9 --capacity "${POOL_NODES:-1000000}" --state "$work/state.bin" & ;;
    esac
    server_pid=$!
    if [[ $1 == echo* ]]; then sleep 0.3; return 0; fi # the echo server does not speak KRPC
    # Wait until it answers a ping (libtorrent takes a moment to start its DHT).
    for _ in $(seq 1 100); do
        if "$BTDHT" -q ping "127.0.1.1:$port" --allow-private --bind 127.0.1.2:0 --timeout 1 >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    echo "warning: $1 did not answer a ping" >&2
}

contenders=(echo echo-1 node bootstrap)
[[ -n $PY ]] && contenders=(echo echo-1 libtorrent node bootstrap)
if [[ -z ${SKIP_POOL:-} ]]; then
    contenders+=(echo-pad bootstrap1m)
    if [[ -z ${PAD:-} ]]; then
        # The size of bootstrap1m's answers to this query, from one short run.
        port=$((port + 1))
        start_server bootstrap1m
        PAD=$("$BTDHT" bench "127.0.1.1:$port" --query "$QUERY" --seconds 1 --warmup 0 \
            --window 16 --sources 8 | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["answer_bytes_mean"]))')
        cleanup
        server_pid=""
    fi
    echo "echo-pad replies padded to $PAD bytes (bootstrap1m's $QUERY answers)"
fi
if [[ -z ${SKIP_NODEFULL:-} ]]; then
    contenders+=(echo-nodefull nodefull)
    if [[ -z ${PAD_NODE:-} ]]; then
        # The size of nodefull's answers to this query, from one short run.
        port=$((port + 1))
        start_server nodefull
        PAD_NODE=$("$BTDHT" bench "127.0.1.1:$port" --query "$QUERY" "${bench_extra[@]}" \
            --seconds 1 --warmup 0 --window 16 --sources 8 |
            python3 -c 'import json,sys; print(round(json.load(sys.stdin)["answer_bytes_mean"]))')
        cleanup
        server_pid=""
    fi
    echo "echo-nodefull replies padded to $PAD_NODE bytes (nodefull's $QUERY${VALUES:+ (50 values)} answers)"
fi
if [[ -n ${CONTENDERS:-} ]]; then
    read -r -a contenders <<<"$CONTENDERS"
fi
ticks_per_sec=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; } # utime + stime
declare -A results costs
for round in $(seq 1 "$ROUNDS"); do
    for name in "${contenders[@]}"; do
        port=$((port + 1))
        start_server "$name"
        perf_pid=""
        if [[ -n ${PROFILE:-} ]]; then
            mkdir -p "$PROFILE"
            perf record -q -e cpu-clock -F 999 -g -p "$server_pid" -o "$PROFILE/$name.$round.data" \
                2>/dev/null &
            perf_pid=$!
        fi
        out=$(mktemp)
        taskset -c 1 "$BTDHT" bench "127.0.1.1:$port" --query "$QUERY" "${bench_extra[@]}" \
            --seconds "$SECONDS_PER_RUN" --warmup "$WARMUP" --window "$WINDOW" \
            --sources "$SOURCES" >"$out" || true &
        bench_pid=$!
        # The server's CPU over the measured seconds only (after the warm-up).
        sleep "$WARMUP"
        cpu_before=$(cpu_ticks "$server_pid")
        wall_before=$(date +%s.%N)
        sleep "$SECONDS_PER_RUN"
        cpu=$(($(cpu_ticks "$server_pid") - cpu_before))
        wall_after=$(date +%s.%N)
        wall=$(python3 -c "print($wall_after - $wall_before)")
        wait "$bench_pid" || true
        json=$(cat "$out")
        rm -f "$out"
        if [[ -n $perf_pid ]]; then
            kill -INT "$perf_pid" 2>/dev/null || true
            wait "$perf_pid" 2>/dev/null || true
        fi
        cleanup
        server_pid=""
        rate=$(printf '%s' "$json" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(round(d["answered_per_sec"]))' 2>/dev/null || echo 0)
        loss=$(printf '%s' "$json" | python3 -c 'import json,sys; d=json.load(sys.stdin); l=d["latency_us"]; print("loss %.4f p50 %dus p99 %dus" % (d["loss"], l["p50"], l["p99"]))' 2>/dev/null || echo "no report")
        # Server CPU over the measured seconds against the queries answered in them.
        usage=$(printf '%s' "$json" | python3 -c 'import json,sys
d = json.load(sys.stdin); cpu = '"$cpu"' / '"$ticks_per_sec"'; wall = '"$wall"'
answered = d["answered_per_sec"] * wall
gen = d.get("generator_cpu_share")
gen = " generator cpu %3.0f%%" % (100 * gen) if gen is not None else ""
print("server cpu %3.0f%% %5.2fus/query%s" % (100 * cpu / wall, 1e6 * cpu / max(answered, 1), gen))' 2>/dev/null || echo "")
        printf 'round %d %-10s %8s answered/s  %s  %s\n' "$round" "$name" "$rate" "$loss" "$usage"
        results[$name]+="$rate "
        costs[$name]+="$(echo "$usage" | grep -o '[0-9.]*us' | tr -d us) "
        if [[ -n ${PROFILE:-} && -s $PROFILE/$name.$round.data ]]; then
            perf report -i "$PROFILE/$name.$round.data" --no-children --sort dso --stdio 2>/dev/null |
                grep -E '^ +[0-9.]+%' | head -4 | sed "s/^/    $name dso: /" || true
            perf report -i "$PROFILE/$name.$round.data" --no-children --sort sym --stdio -g none \
                2>/dev/null | grep -E '^ +[0-9.]+%' | head -12 | sed "s/^/    $name sym: /" || true
        fi
    done
done

python3 - "$QUERY" "${contenders[@]}" <<EOF
import statistics, sys
query, names = sys.argv[1], sys.argv[2:]
raw = {$(for n in "${contenders[@]}"; do printf '"%s": [%s], ' "$n" "$(echo "${results[$n]}" | tr ' ' ',' | sed 's/,$//')"; done)}
cost = {$(for n in "${contenders[@]}"; do printf '"%s": [%s], ' "$n" "$(echo "${costs[$n]}" | tr -s ' ' ',' | sed 's/^,//; s/,$//')"; done)}
med = {n: statistics.median(raw[n]) for n in names}
print(f"\nquery={query}  rounds=$ROUNDS  seconds=$SECONDS_PER_RUN  window=$WINDOW  sources=$SOURCES")
for n in names:
    c = f"  server CPU {statistics.median(cost[n]):.2f} us/query" if cost.get(n) else ""
    print(f"{n:<10} median {med[n]:>9.0f}/s  (min {min(raw[n]):.0f}, max {max(raw[n]):.0f}){c}")
for n in [n for n in ("node", "bootstrap", "bootstrap1m", "nodefull") if n in med]:
    if "libtorrent" in med and med["libtorrent"]:
        r = [a / b for a, b in zip(raw[n], raw["libtorrent"]) if b]
        print(f"{n} / libtorrent: {med[n] / med['libtorrent']:.2f}x  (per round {min(r):.2f}-{max(r):.2f})")
    if med.get("echo"):
        r = [a / b for a, b in zip(raw[n], raw["echo"]) if b]
        print(f"{n} / raw echo:   {100 * med[n] / med['echo']:.0f}%  (per round {100 * min(r):.0f}-{100 * max(r):.0f}%)")
if med.get("echo-pad") and "bootstrap1m" in med:
    r = [a / b for a, b in zip(raw["bootstrap1m"], raw["echo-pad"]) if b]
    print(f"bootstrap1m / matched echo (${PAD:-0}-byte replies): {med['bootstrap1m'] / med['echo-pad']:.2f}x  (per round {min(r):.2f}-{max(r):.2f})")
if med.get("echo-nodefull") and "nodefull" in med:
    r = [a / b for a, b in zip(raw["nodefull"], raw["echo-nodefull"]) if b]
    print(f"nodefull / matched echo (${PAD_NODE:-0}-byte replies): {med['nodefull'] / med['echo-nodefull']:.2f}x  (per round {min(r):.2f}-{max(r):.2f})")
summary_path = "${SUMMARY_JSON:-}"
if summary_path:
    import json
    def ratio(n, base):
        r = [a / b for a, b in zip(raw.get(n, []), raw.get(base, [])) if b]
        if not r or not med.get(base):
            return None
        return {"median": med[n] / med[base], "min": min(r), "max": max(r)}
    matched = {"bootstrap1m": "echo-pad", "nodefull": "echo-nodefull"}
    with_lt = ("node", "bootstrap", "bootstrap1m", "nodefull")
    summary = {
        "query": query,
        "contenders": {n: {"median": med[n], "us": statistics.median(cost[n]) if cost.get(n) else 0.0} for n in names},
        "vs_libtorrent": {n: ratio(n, "libtorrent") for n in names if n in with_lt},
        "vs_matched_echo": {n: ratio(n, matched[n]) for n in names if n in matched},
        # The matched echo's CPU per answer over the server's: what the rate ratio would be
        # with both at 100% of their core (robust when the generator, not the server, limits).
        "cpu_vs_matched_echo": {n: statistics.median(cost[matched[n]]) / statistics.median(cost[n])
                                for n in names if n in matched and cost.get(n) and cost.get(matched[n])},
    }
    json.dump(summary, open(summary_path, "w"))
EOF

if [[ -n ${CALLGRIND:-} ]]; then
    # User-space instructions per answer: independent of the machine's load.
    workloads=()
    case $QUERY in
        ping) workloads=(node/ping_ro) ;;
        find-node) workloads=(bootstrap1m/find_node node/find_node_full) ;;
        get-peers)
            workloads=(bootstrap1m/get_peers)
            if [[ -n ${VALUES:-} ]]; then workloads+=(node/get_peers_50); else workloads+=(node/get_peers_full); fi
            ;;
        *) echo "CALLGRIND needs QUERY=ping, find-node or get-peers" >&2; exit 0 ;;
    esac
    bench_bin=$(cargo bench --bench krpc_codec --no-run 2>&1 | grep -o 'target/[^ )]*krpc_codec-[0-9a-f]*' | tail -1)
    queries=5000
    for workload in "${workloads[@]}"; do
        valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" \
            --toggle-collect='krpc_codec::feed' "$bench_bin" --hot-path --rounds 1 \
            --queries "$queries" --workload "$workload" >/dev/null 2>"$work/callgrind.log"
        collected=$(grep -o 'Collected : [0-9]*' "$work/callgrind.log" | grep -o '[0-9]*$')
        echo "$workload: $((collected / queries)) user-space instructions per answer (callgrind, $queries queries)"
    done
fi
