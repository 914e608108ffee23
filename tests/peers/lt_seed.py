#!/usr/bin/env python3
"""Seeds freshly made torrents with libtorrent on loopback, for the metadata interop tests.

Creates one torrent (or --count of them) of a few files (and optionally many small ones) in a
temporary directory with libtorrent's create_torrent, seeds them in one session on 127.0.0.1
with DHT, LSD, UPnP and NAT-PMP off, prints one JSON line per torrent (info-hash, listen port,
name, files, total size), then runs for --duration seconds, or until its standard input is closed or it gets SIGTERM, and removes the directory. Refuses to listen
outside 127.0.0.0/8.
"""

import argparse
import ipaddress
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings

import libtorrent as lt

warnings.filterwarnings("ignore", category=DeprecationWarning)


def make_files(root, name, many):
    """Writes the torrent's files under root/name; returns [(path under name, length)]."""
    files = [("readme.txt", 1000), ("data/big.bin", 70000), ("data/tiny.dat", 5)]
    files += [(f"many/file-{i:04d}-with-a-longer-name.bin", 1 + i * 7) for i in range(many)]
    for path, length in files:
        full = os.path.join(root, name, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(bytes((i * 31 + len(path)) % 251 for i in range(length)))
    return files


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1", help="loopback IP to listen on")
    parser.add_argument("--name", default="lt-seed-torrent")
    parser.add_argument("--many", type=int, default=0, help="extra small files")
    parser.add_argument("--v1-only", action="store_true", help="a v1 torrent (default: hybrid)")
    parser.add_argument("--count", type=int, default=1,
                        help="torrents to seed in one session (named NAME-0000, ...; one JSON line each)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds to seed")
    args = parser.parse_args()
    if not ipaddress.ip_address(args.listen).is_loopback:
        sys.exit("lt_seed.py: refusing a non-loopback address")

    # SIGTERM ends the script through its finally block, which removes the directory.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    root = tempfile.mkdtemp(prefix="btdht-lt-seed-")
    try:
        session = lt.session({
            "listen_interfaces": f"{args.listen}:0",
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "alert_mask": lt.alert.category_t.status_notification | lt.alert.category_t.error_notification,
        })
        names = [args.name] if args.count == 1 else [f"{args.name}-{i:04d}" for i in range(args.count)]
        seeded = []
        for name in names:
            files = make_files(root, name, args.many)
            storage = lt.file_storage()
            lt.add_files(storage, os.path.join(root, name))
            flags = lt.create_torrent.v1_only if args.v1_only else 0
            creator = lt.create_torrent(storage, 0, flags)
            lt.set_piece_hashes(creator, root)
            info = lt.torrent_info(creator.generate())
            params = lt.add_torrent_params()
            params.ti = info
            params.save_path = root
            params.flags |= lt.torrent_flags.seed_mode
            params.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
            seeded.append((name, files, info, session.add_torrent(params)))

        # Ready once it listens and every torrent is seeding (it refuses peers before).
        deadline = time.time() + 10 + args.count / 10
        while time.time() < deadline and (
            session.listen_port() == 0
            or any(h.status().state != lt.torrent_status.seeding or h.status().paused
                   for _, _, _, h in seeded)
        ):
            time.sleep(0.05)
        for name, files, info, _ in seeded:
            print(json.dumps({
                "infohash": str(info.info_hashes().v1),
                "port": session.listen_port(),
                "name": name,
                "files": [{"path": p, "length": n} for p, n in files],
                "total_size": sum(n for _, n in files),
            }), flush=True)
        # The caller closes our stdin to stop us, so the directory is removed (a kill would
        # leave it behind).
        stdin_closed = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.read(), stdin_closed.set()), daemon=True).start()
        end = time.time() + args.duration
        while time.time() < end and not stdin_closed.is_set():
            time.sleep(0.2)
            for alert in session.pop_alerts():
                if alert.category() & lt.alert.category_t.error_notification:
                    print(f"alert: {alert.message()}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
