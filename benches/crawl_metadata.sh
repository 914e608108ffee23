#!/usr/bin/env bash
# Metadata crawl benchmark: `btdht swarm` runs NODES real DHT nodes on loopback; SEEDERS
# libtorrent sessions (tests/peers/lt_seed.py, one per IP 127.0.60.k) seed TORRENTS fresh
# torrents in all; `btdht announce` stores each torrent in the swarm from its seeder's IP, so
# the announced peer is libtorrent. `btdht crawl --metadata --until-idle` then finds the
# info-hashes through BEP 51 samples, asks their peers and fetches their metadata from
# libtorrent. Prints torrents with metadata per minute, queries per torrent, and the time to
# 50%, 90%, 99% and 100% of the seeded torrents. Loopback only.
#
#   benches/crawl_metadata.sh [NODES] [TORRENTS] [SEEDERS] [extra crawl options...]
#   BTDHT=target/release/btdht BTDHT_PEERS_PY=... benches/crawl_metadata.sh 500 200 4
#
# Needs the libtorrent venv of tests/peers/setup.sh (it prints the python to use).
set -euo pipefail
NODES=${1:-500}
TORRENTS=${2:-200}
SEEDERS=${3:-4}
shift $(( $# < 3 ? $# : 3 )) || true
BTDHT=${BTDHT:-target/release/btdht}
PY=${BTDHT_PEERS_PY:-$(tests/peers/setup.sh)}
PORT=${PORT:-27881}
DIR=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT

"$BTDHT" swarm --nodes "$NODES" --infohashes 0 --port "$PORT" --duration 3600 \
    >"$DIR/swarm.out" 2>"$DIR/swarm.err" &
PIDS+=($!)
for _ in $(seq 1 600); do grep -q '^ready' "$DIR/swarm.out" 2>/dev/null && break; sleep 0.5; done
grep -q '^ready' "$DIR/swarm.out" || { cat "$DIR/swarm.err"; echo "swarm not ready" >&2; exit 1; }
BOOT=$(awk '/^bootstrap/ {print $2; exit}' "$DIR/swarm.out")

# Seeders read a fifo nobody writes (held open here): their stdin never closes, and SIGTERM
# at the end lets each remove its directory.
mkfifo "$DIR/hold"
exec {HOLD}<>"$DIR/hold"
PER=$(( (TORRENTS + SEEDERS - 1) / SEEDERS ))
for k in $(seq 1 "$SEEDERS"); do
    count=$(( k * PER <= TORRENTS ? PER : TORRENTS - (k - 1) * PER ))
    [ "$count" -gt 0 ] || break
    "$PY" tests/peers/lt_seed.py --listen "127.0.60.$k" --count "$count" --name "bench-$k" \
        --duration 3600 <&"$HOLD" >"$DIR/seed$k.ndjson" 2>"$DIR/seed$k.err" &
    PIDS+=($!)
done
for k in $(seq 1 "$SEEDERS"); do
    [ -f "$DIR/seed$k.ndjson" ] || continue
    want=$(( k * PER <= TORRENTS ? PER : TORRENTS - (k - 1) * PER ))
    for _ in $(seq 1 600); do
        [ "$(wc -l <"$DIR/seed$k.ndjson")" -ge "$want" ] && break; sleep 0.2
    done
done
cat "$DIR"/seed*.ndjson >"$DIR/seeded.ndjson"
echo "seeded $(wc -l <"$DIR/seeded.ndjson") torrents from $SEEDERS libtorrent sessions" >&2

# Announce every torrent from its seeder's IP (8 at a time).
for k in $(seq 1 "$SEEDERS"); do
    [ -f "$DIR/seed$k.ndjson" ] || continue
    python3 -c 'import json,sys
for l in open(sys.argv[1]): r=json.loads(l); print(r["infohash"], r["port"])' "$DIR/seed$k.ndjson" |
        sed "s/^/127.0.60.$k /"
done | xargs -P 8 -L 1 sh -c '"$0" announce "$2" --port "$3" --bind "$1:0" --bootstrap '"$BOOT"' \
        --allow-private --timeout 10 >/dev/null' "$BTDHT"
echo "announced" >&2

START=$(date +%s.%N)
"$BTDHT" crawl --bootstrap "$BOOT" --allow-private --metadata --until-idle --duration 600 \
    --out "$DIR/crawl.ndjson" --seed 1 "$@"
python3 - "$DIR/seeded.ndjson" "$DIR/crawl.ndjson" "$START" "$NODES" <<'PY'
import json, sys
seeded = {json.loads(l)["infohash"] for l in open(sys.argv[1])}
start, nodes = float(sys.argv[3]), int(sys.argv[4])
got, summary = {}, None
for line in open(sys.argv[2]):
    r = json.loads(line)
    if r["type"] == "torrent" and r["infohash"] in seeded:
        got.setdefault(r["infohash"], r["seen"] - start)
    elif r["type"] == "summary":
        summary = r
times = sorted(got.values())
def at(share):
    need = max(1, int(share * len(seeded) + 0.999))
    return f"{times[need - 1]:.1f} s" if len(times) >= need else "never"
secs = summary["duration_s"]
print(f"swarm: {nodes} nodes, {len(seeded)} torrents seeded by libtorrent; fetched {len(got)}")
print()
print("| torrents with metadata | per minute | queries per torrent | 50% | 90% | 99% | 100% |")
print("|---|---|---|---|---|---|---|")
last = times[-1] if times else secs
print(f"| {len(got)} of {len(seeded)} | {60 * len(got) / max(last, 1e-9):.0f} | "
      f"{summary['queries_sent'] / max(1, len(got)):.1f} | {at(0.5)} | {at(0.9)} | {at(0.99)} | {at(1.0)} |")
print()
print(f"crawl summary: {json.dumps(summary)}")
PY
