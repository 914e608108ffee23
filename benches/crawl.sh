#!/usr/bin/env bash
# Crawl benchmark: `btdht swarm` runs N real nodes on loopback (127.1.0.1, ...), `btdht crawl`
# crawls it for D seconds; coverage of the ground truth against time, and queries sent per node
# found, are printed as a Markdown table. Loopback only.
#
#   benches/crawl.sh [NODES] [INFOHASHES] [SECONDS] [extra crawl options...]
#   BTDHT=path/to/btdht benches/crawl.sh 5000 5000 60
set -euo pipefail
NODES=${1:-5000}
HASHES=${2:-$NODES}
SECS=${3:-60}
shift $(( $# < 3 ? $# : 3 )) || true
BTDHT=${BTDHT:-target/release/btdht}
PORT=${PORT:-26881}
DIR=$(mktemp -d)
trap 'kill $SWARM 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DIR"' EXIT

PIN0=(); PIN1=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then PIN0=(taskset -c 0); PIN1=(taskset -c 1); fi

"${PIN0[@]}" "$BTDHT" swarm --nodes "$NODES" --infohashes "$HASHES" --port "$PORT" \
    --truth "$DIR/truth.json" --duration $((SECS + 30)) >"$DIR/swarm.out" 2>"$DIR/swarm.err" &
SWARM=$!
for _ in $(seq 1 600); do grep -q '^ready' "$DIR/swarm.out" 2>/dev/null && break; sleep 0.5; done
grep -q '^ready' "$DIR/swarm.out" || { cat "$DIR/swarm.err"; echo "swarm not ready" >&2; exit 1; }
cat "$DIR/swarm.err" >&2
BOOT=$(awk '/^bootstrap/ {print $2; exit}' "$DIR/swarm.out")

START=$(date +%s.%N)
"${PIN1[@]}" "$BTDHT" crawl --bootstrap "$BOOT" --allow-private --duration "$SECS" \
    --out "$DIR/crawl.ndjson" --seed 1 "$@"

python3 - "$DIR/truth.json" "$DIR/crawl.ndjson" "$START" <<'PY'
import json, sys
truth = json.load(open(sys.argv[1]))
start = float(sys.argv[3])
nodes = {(n["id"], n["addr"]) for n in truth["nodes"]}
hashes = set(truth["infohashes"])
seen_n, seen_h, summary = [], [], None
for line in open(sys.argv[2]):
    r = json.loads(line)
    if r["type"] == "node" and (r["id"], r["addr"]) in nodes:
        seen_n.append(r["first_seen"] - start)
    elif r["type"] == "infohash" and r["infohash"] in hashes:
        seen_h.append(r["seen"] - start)
    elif r["type"] == "summary":
        summary = r
def at(xs, t): return sum(1 for x in xs if x <= t)
def first(xs, total, share):
    need = share * total
    xs = sorted(xs)
    return "%.1f s" % xs[int(need) - 1] if total and len(xs) >= need else "never"
print(f"swarm: {len(nodes)} nodes, {len(hashes)} info-hashes; crawl summary: {json.dumps(summary)}")
print()
print("| time | nodes found | share | info-hashes found | share |")
print("|---|---|---|---|---|")
for t in (1, 2, 5, 10, 15, 20, 30, 45, 60):
    if t > summary["duration_s"] + 1: break
    n, h = at(seen_n, t), at(seen_h, t)
    print(f"| {t} s | {n} | {100*n/max(1,len(nodes)):.1f}% | {h} | {100*h/max(1,len(hashes)):.1f}% |")
print()
print(f"99% of nodes at {first(seen_n, len(nodes), 0.99)}, 99% of info-hashes at {first(seen_h, len(hashes), 0.99)}; "
      f"{summary['queries_sent']} queries, {summary['queries_sent']/max(1,len(seen_n)):.3f} per node found "
      f"({summary['samples_sent']} sample_infohashes, {summary['find_nodes_sent']} find_node, {summary['timeouts']} timeouts)")
PY
