#!/usr/bin/env bash
# Query throughput on loopback: raw UDP echo (batched like the servers: the physical-limit
# baseline), raw echo with one system call per datagram (echo-1, for reference), libtorrent
# (relaxed limits), `btdht node` and `btdht bootstrap`, each loaded in turn by `btdht bench`
# (same load), ROUNDS rounds of alternation. The server runs on core 0 (taskset -c 0), the
# generator on core 1.
# Prints each run's answered/s and the server's CPU use (from /proc/PID/stat: the share of
# its core it used, and its CPU microseconds per answered query, which shows where the time
# goes even when the generator or a noisy neighbour limits the rate), then per contender the
# median (min-max) and the ratios of medians against libtorrent and raw echo.
#
# Usage: benches/throughput.sh [ROUNDS] [SECONDS]
# Env:   QUERY=ping|find_node|get_peers|mix (default ping), WINDOW (256), SOURCES (64),
#        BTDHT=path/to/btdht (default: builds it with cargo build --release),
#        SKIP_LT=1 to leave libtorrent out (else tests/peers/setup.sh installs it once),
#        PROFILE=DIR to record each server with `perf record -e cpu-clock -g` into DIR (one
#        file per run) and print its split between kernel and user space and its top symbols.
# Only 127.0.0.0/8 is used. Both btdht servers run with --rate-limit off (the per-IP limit,
# 20/s, would otherwise answer each of the 64 sources 20 times a second).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${1:-5}
SECONDS_PER_RUN=${2:-4}
QUERY=${QUERY:-ping}
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

server_pid=""
cleanup() {
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT

port=47000
start_server() { # name -> starts it on 127.0.1.1:$port, sets server_pid
    local life=$((SECONDS_PER_RUN + WARMUP + 10))
    case $1 in
        echo) taskset -c 0 "$BTDHT" -q udp-echo --bind "127.0.1.1:$port" --seconds "$life" & ;;
        echo-1) taskset -c 0 "$BTDHT" -q udp-echo --per-datagram --bind "127.0.1.1:$port" --seconds "$life" & ;;
        libtorrent) taskset -c 0 "$PY" tests/peers/lt_node.py --listen "127.0.1.1:$port" --duration "$life" >/dev/null & ;;
        node) taskset -c 0 "$BTDHT" -q node --bind "127.0.1.1:$port" --allow-private --rate-limit off --bootstrap 127.0.1.1:9 & ;;
        bootstrap) taskset -c 0 "$BTDHT" -q bootstrap --bind "127.0.1.1:$port" --allow-private --rate-limit off --bootstrap 127.0.1.1:9 --capacity 100000 & ;;
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
        taskset -c 1 "$BTDHT" bench "127.0.1.1:$port" --query "$QUERY" \
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
for n in ("node", "bootstrap"):
    if "libtorrent" in med and med["libtorrent"]:
        r = [a / b for a, b in zip(raw[n], raw["libtorrent"]) if b]
        print(f"{n} / libtorrent: {med[n] / med['libtorrent']:.2f}x  (per round {min(r):.2f}-{max(r):.2f})")
    if med.get("echo"):
        r = [a / b for a, b in zip(raw[n], raw["echo"]) if b]
        print(f"{n} / raw echo:   {100 * med[n] / med['echo']:.0f}%  (per round {100 * min(r):.0f}-{100 * max(r):.0f}%)")
EOF
