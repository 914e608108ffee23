#!/usr/bin/env python3
"""A libtorrent DHT node on a loopback address, for btdht's interop tests and benches.

Runs a libtorrent session (PyPI `libtorrent` 2.1.1, installed by tests/peers/setup.sh) with
nothing but its DHT: no LSD, UPnP, NAT-PMP, no default routers. Every address it is given must
be a loopback address (127.0.0.0/8 or ::1); it refuses any other.

    PY=$(tests/peers/setup.sh)
    "$PY" tests/peers/lt_node.py --listen 127.0.1.1:46881 [--duration 60]
        [--add-node IP:PORT]... [--bootstrap IP:PORT]...
        [--announce HEX40 [--peer-port 6881]]... [--get-peers HEX40]... [--action-delay 3]
        [--put-immutable TEXT]... [--get-immutable HEX40]...
        [--put-mutable SEED_HEX64 --public-key HEX64 --mutable-value TEXT] [--salt TEXT]
        [--get-mutable HEX64]...

--add-node gives libtorrent a node to ping and put in its routing table; --bootstrap gives it a
router, which it asks for nodes but never puts in its table. --action-delay seconds after the
start it calls dht_announce for each --announce and dht_get_peers for each --get-peers, once.
It also stores and gets BEP 44 items then: --put-immutable stores TEXT (a byte string) as an
immutable item, --get-immutable gets one by its target; --put-mutable stores --mutable-value as
the mutable item of the ed25519 key whose 32-byte seed and public key are given (libtorrent
signs with the 64-byte expanded secret key, derived here from the seed), under --salt, at one
more than the sequence number it finds; --get-mutable gets the mutable item of a public key
under --salt. It exits after --duration seconds (at most 3600).

libtorrent's anti-abuse limits are relaxed, because the tests run many nodes on one /24 and
load it from few addresses: its routing table and lookups accept several nodes per IP and per
/24, it bans no source and does not cap its upload rate. It answers BEP 51 sample_infohashes
with a fresh sample each time.

Output, on stdout, one line per event (flushed at once):
    listening IP:PORT                      the DHT's UDP socket is bound
    announce HEX40 port N                  dht_announce was called
    get_peers HEX40                        dht_get_peers was called
    peers HEX40 [IP:PORT ...]              a get_peers lookup ended with these peers
    incoming_announce HEX40 IP:PORT        a node announced to us (before its token is checked)
    put_immutable HEX40                    dht_put_immutable_item was called (the target)
    put_mutable HEX64                      dht_put_mutable_item was called (the public key)
    put HEX40 stored N                     a put ended, stored by N nodes
    immutable_item HEX40 BENCODED_HEX      a get of an immutable item found it
    mutable_item HEX64 seq N BENCODED_HEX  a get of a mutable item found it (or a newer one)
Errors go to stderr; a socket that cannot be bound ends the script with status 1.

The interop tests (tests/support/libtorrent.rs) run this script with the python named by
BTDHT_PEERS_PY, or else with the venv's python under BTDHT_PEERS_VENV, or else under
${XDG_CACHE_HOME:-~/.cache}/btdht/venv-libtorrent-2.1.1 (where setup.sh puts it).
"""

import argparse
import hashlib
import ipaddress
import sys
import time

import libtorrent as lt

MAX_DURATION = 3600.0


def loopback(text):
    """Parses IP:PORT or [IPv6]:PORT, refusing any address outside the loopback ranges."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    try:
        ip = ipaddress.ip_address(host)
        port = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError("not IP:PORT: %r" % text)
    if not sep or not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError("not IP:PORT: %r" % text)
    if not ip.is_loopback:
        raise argparse.ArgumentTypeError("refusing non-loopback address %r" % text)
    return str(ip), port


def endpoint(host, port):
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def info_hash(text):
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 20:
        raise argparse.ArgumentTypeError("not 40 hex digits: %r" % text)
    return raw


def hex_bytes(length):
    def parse(text):
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = b""
        if len(raw) != length:
            raise argparse.ArgumentTypeError("not %d hex digits: %r" % (2 * length, text))
        return raw

    return parse


def expanded_secret_key(seed):
    """The 64-byte ed25519 secret key libtorrent signs with: SHA-512 of the seed, clamped."""
    digest = bytearray(hashlib.sha512(seed).digest())
    digest[0] &= 248
    digest[31] &= 63
    digest[31] |= 64
    return bytes(digest)


def settings(listen, routers):
    category = lt.alert.category_t
    return {
        # All of these at construction: a session made with defaults first would contact
        # the public routers and start LSD, UPnP and NAT-PMP. The listen address must be an
        # explicit IP (not 0.0.0.0 or an interface name), or the DHT does not start.
        "listen_interfaces": endpoint(*listen),
        "outgoing_interfaces": "",
        "enable_dht": True,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "dht_bootstrap_nodes": ",".join(endpoint(*r) for r in routers),
        "alert_mask": category.dht_notification
        | category.dht_operation_notification
        | category.error_notification
        | category.status_notification,
        # The relaxed limits (see the header).
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_prefer_verified_node_ids": False,
        "dht_block_ratelimit": 1000000,
        "dht_upload_rate_limit": 1 << 30,
        "dht_sample_infohashes_interval": 0,
    }


def say(*words):
    print(*words, flush=True)


def on_alert(alert):
    if isinstance(alert, lt.listen_succeeded_alert):
        if alert.socket_type == lt.socket_type_t.udp:
            say("listening", endpoint(str(alert.address), alert.port))
    elif isinstance(alert, lt.listen_failed_alert):
        sys.exit("lt_node: cannot listen: %s" % alert.message())
    elif isinstance(alert, lt.dht_get_peers_reply_alert):
        say("peers", alert.info_hash, *(endpoint(ip, port) for ip, port in alert.peers()))
    elif isinstance(alert, lt.dht_announce_alert):
        say("incoming_announce", alert.info_hash, endpoint(str(alert.ip), alert.port))
    elif isinstance(alert, lt.dht_put_alert):
        say("put", alert.target, "stored", alert.num_success)
    elif isinstance(alert, lt.dht_immutable_item_alert):
        say("immutable_item", alert.target, lt.bencode(alert.item).hex())
    elif isinstance(alert, lt.dht_mutable_item_alert):
        say("mutable_item", bytes(alert.key).hex(), "seq", alert.seq, lt.bencode(alert.item).hex())


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--listen", type=loopback, required=True, help="IP:PORT to bind")
    parser.add_argument("--add-node", type=loopback, action="append", default=[])
    parser.add_argument("--bootstrap", type=loopback, action="append", default=[])
    parser.add_argument("--announce", type=info_hash, action="append", default=[])
    parser.add_argument("--peer-port", type=int, default=6881, help="the port --announce gives")
    parser.add_argument("--get-peers", type=info_hash, action="append", default=[])
    parser.add_argument("--put-immutable", action="append", default=[])
    parser.add_argument("--get-immutable", type=info_hash, action="append", default=[])
    parser.add_argument("--put-mutable", type=hex_bytes(32), help="the key's 32-byte seed")
    parser.add_argument("--public-key", type=hex_bytes(32), help="the --put-mutable key's")
    parser.add_argument("--mutable-value", default="")
    parser.add_argument("--get-mutable", type=hex_bytes(32), action="append", default=[])
    parser.add_argument("--salt", default="")
    parser.add_argument("--action-delay", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=60.0)
    args = parser.parse_args()
    if args.put_mutable is not None and args.public_key is None:
        parser.error("--put-mutable needs --public-key")

    session = lt.session(settings(args.listen, args.bootstrap))
    for node in args.add_node:
        session.add_dht_node(node)
    start = time.monotonic()
    end = start + min(args.duration, MAX_DURATION)
    acted = False
    while time.monotonic() < end:
        session.wait_for_alert(200)
        for alert in session.pop_alerts():
            on_alert(alert)
        if not acted and time.monotonic() - start >= args.action_delay:
            acted = True
            for raw in args.announce:
                session.dht_announce(lt.sha1_hash(raw), args.peer_port, 0)
                say("announce", raw.hex(), "port", args.peer_port)
            for raw in args.get_peers:
                session.dht_get_peers(lt.sha1_hash(raw))
                say("get_peers", raw.hex())
            salt = args.salt.encode()
            for text in args.put_immutable:
                target = session.dht_put_immutable_item(text.encode())
                say("put_immutable", target)
            for raw in args.get_immutable:
                session.dht_get_immutable_item(lt.sha1_hash(raw))
            if args.put_mutable is not None:
                secret = expanded_secret_key(args.put_mutable)
                value = args.mutable_value.encode()
                session.dht_put_mutable_item(secret, args.public_key, value, salt)
                say("put_mutable", args.public_key.hex())
            for key in args.get_mutable:
                session.dht_get_mutable_item(key, salt)


if __name__ == "__main__":
    main()
