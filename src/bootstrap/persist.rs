//! Saving and loading the bootstrap pool, so that a restarted server keeps serving.
//!
//! The file is binary: the magic `BTDHTPL1`, the IPv4 and IPv6 counts (`u64`, little endian),
//! then each node as compact node info (26 bytes IPv4, 38 bytes IPv6) followed by its age in
//! seconds (`u32`, little endian). Ages, not times, are stored because the core's clock
//! restarts with the process. A save snapshots the pool into memory under the read lock and
//! writes it without the lock (temporary file, fsync, rename), so the file is always whole.
//! A load checks every length before using it; records past a pool's capacity (a file saved
//! by a larger server) are skipped, not swapped in for earlier ones; a file over
//! [`MAX_FILE_BYTES`] or a corrupt one is an error, never a panic. A load keeps only the nodes the server's configuration
//! keeps ([`BootstrapConfig::keeps`]: no private or loopback address without
//! [`BootstrapConfig::allow_private`], no BEP 42-inconsistent id with
//! [`BootstrapConfig::bep42_strict`]), and counts the others as skipped ([`Loaded`]).

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use super::{BootstrapConfig, Pools, SharedPools};
use crate::contact::NodeInfo;
use crate::id::NodeId;
use crate::krpc::compact;

const MAGIC: &[u8; 8] = b"BTDHTPL1";
const HEADER: usize = 8 + 8 + 8;

/// Largest pool file loaded (1 GiB: over 35 million IPv4 nodes), so that a wrong path cannot
/// make the server read an arbitrarily large file into memory.
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// The pools as the bytes of a pool file, at pool time `now`.
pub fn snapshot(pools: &Pools, now: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + pools.v4.len() * 30 + pools.v6.len() * 42);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(pools.v4.len() as u64).to_le_bytes());
    out.extend_from_slice(&(pools.v6.len() as u64).to_le_bytes());
    for (node, seen) in pools.v4.iter().chain(pools.v6.iter()) {
        compact::encode_node(&mut out, &node);
        out.extend_from_slice(&now.saturating_sub(seen).to_le_bytes());
    }
    out
}

/// Writes the shared pools to `path` atomically; returns the nodes written.
pub fn save(path: &Path, pools: &SharedPools, now: u32) -> io::Result<usize> {
    let (bytes, count) = {
        let pools = pools.read();
        (snapshot(&pools, now), pools.len())
    };
    let tmp = path.with_extension("tmp");
    {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    Ok(count)
}

/// What a load found in a pool file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Nodes added to the pools.
    pub nodes: usize,
    /// Nodes left out: refused by the configuration ([`BootstrapConfig::keeps`]), not
    /// decodable, or past the pool's capacity.
    pub skipped: usize,
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("bad pool file: {what}"))
}

/// Adds the nodes of a pool file's bytes that `config` keeps to `pools` at pool time `now`,
/// then rebuilds the sorted indexes; returns the nodes added and skipped.
pub fn restore(
    pools: &mut Pools,
    bytes: &[u8],
    now: u32,
    config: &BootstrapConfig,
) -> io::Result<Loaded> {
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return Err(corrupt("no header"));
    }
    let count = |at: usize| -> io::Result<usize> {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        usize::try_from(u64::from_le_bytes(word)).map_err(|_| corrupt("count"))
    };
    let (n4, n6) = (count(8)?, count(16)?);
    let need = n4
        .checked_mul(30)
        .zip(n6.checked_mul(42))
        .and_then(|(a, b)| a.checked_add(b))
        .and_then(|n| n.checked_add(HEADER));
    if need != Some(bytes.len()) {
        return Err(corrupt("length does not match the counts"));
    }
    let mut at = HEADER;
    let mut loaded = Loaded::default();
    for (count, addr_len) in [(n4, 6usize), (n6, 18)] {
        let size = 20 + addr_len + 4;
        for _ in 0..count {
            let record = &bytes[at..at + size];
            at += size;
            let id = NodeId::from_slice(&record[..20]);
            let addr = compact::decode_addr(&record[20..20 + addr_len]);
            let mut age = [0u8; 4];
            age.copy_from_slice(&record[20 + addr_len..]);
            let full = |addr: std::net::SocketAddr| {
                if addr.is_ipv4() {
                    pools.v4.len() >= pools.v4.capacity()
                } else {
                    pools.v6.len() >= pools.v6.capacity()
                }
            };
            match (id, addr) {
                (Some(id), Some(addr)) if config.keeps(&NodeInfo::new(id, addr)) && !full(addr) => {
                    pools.insert(
                        NodeInfo::new(id, addr),
                        now.saturating_sub(u32::from_le_bytes(age)),
                    );
                    loaded.nodes += 1;
                }
                _ => loaded.skipped += 1,
            }
        }
    }
    pools.v4.rebuild_index();
    pools.v6.rebuild_index();
    Ok(loaded)
}

/// Loads a pool file into the shared pools, keeping the nodes `config` keeps; nothing
/// loaded if there is no file yet.
pub fn load(
    path: &Path,
    pools: &SharedPools,
    now: u32,
    config: &BootstrapConfig,
) -> io::Result<Loaded> {
    match fs::metadata(path) {
        Ok(meta) if meta.len() > MAX_FILE_BYTES => {
            return Err(corrupt("larger than MAX_FILE_BYTES"));
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Loaded::default()),
        Err(e) => return Err(e),
    }
    let bytes = fs::read(path)?;
    restore(&mut pools.write(), &bytes, now, config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;
    use std::net::SocketAddr;

    #[test]
    fn round_trip_keeps_nodes_and_ages() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut pools = Pools::new(1000, 1);
        let a = NodeInfo::new(NodeId::random(&mut rng), "1.2.3.4:5".parse().unwrap());
        let b = NodeInfo::new(NodeId::random(&mut rng), "[2001::7]:9".parse().unwrap());
        pools.insert(a, 100);
        pools.insert(b, 150);
        let bytes = snapshot(&pools, 200);
        let mut back = Pools::new(1000, 2);
        let config = BootstrapConfig::default();
        assert_eq!(
            restore(&mut back, &bytes, 1000, &config).unwrap(),
            Loaded {
                nodes: 2,
                skipped: 0
            }
        );
        assert_eq!(back.seen(&a.addr), Some(900));
        assert_eq!(back.seen(&b.addr), Some(950));
        // Truncated or garbled files are errors.
        for cut in [0, 5, HEADER, bytes.len() - 1] {
            assert!(restore(&mut Pools::new(10, 3), &bytes[..cut], 0, &config).is_err());
        }
        let mut bad = bytes.clone();
        bad[8] = 0xff;
        assert!(restore(&mut Pools::new(10, 3), &bad, 0, &config).is_err());
        let _: SocketAddr = a.addr;
    }

    /// A pool file may hold addresses the server must not talk to (written by a server with
    /// `allow_private`, or by hand): without `allow_private` they are skipped and counted.
    #[test]
    fn private_addresses_are_skipped_unless_allowed() {
        let mut rng = SmallRng::seed_from_u64(2);
        let mut pools = Pools::new(1000, 1);
        let public = ["81.0.0.1:6881", "[2a00::1]:6881"];
        let ignored = [
            "127.0.0.1:6881",
            "10.0.0.1:6881",
            "192.168.1.1:6881",
            "100.64.0.1:6881",
            "81.0.0.2:0",
            "[::1]:6881",
            "[fd00::1]:6881",
            "[::ffff:127.0.0.1]:6881",
            "[::ffff:10.0.0.1]:6881",
        ];
        for addr in public.iter().chain(&ignored) {
            let node = NodeInfo::new(NodeId::random(&mut rng), addr.parse().unwrap());
            pools.insert(node, 100);
        }
        let bytes = snapshot(&pools, 100);
        let mut back = Pools::new(1000, 2);
        let loaded = restore(&mut back, &bytes, 100, &BootstrapConfig::default()).unwrap();
        assert_eq!(
            loaded,
            Loaded {
                nodes: public.len(),
                skipped: ignored.len()
            }
        );
        assert_eq!(back.len(), public.len());
        for addr in ignored {
            assert_eq!(back.seen(&addr.parse().unwrap()), None, "{addr}");
        }
        let allow = BootstrapConfig {
            allow_private: true,
            ..BootstrapConfig::default()
        };
        let mut back = Pools::new(1000, 2);
        let loaded = restore(&mut back, &bytes, 100, &allow).unwrap();
        // Port 0 stays out even then.
        assert_eq!(
            loaded,
            Loaded {
                nodes: public.len() + ignored.len() - 1,
                skipped: 1
            }
        );
    }

    /// A file from a larger server fills a smaller pool and counts the rest as skipped,
    /// rather than swapping later records in for earlier ones.
    #[test]
    fn records_past_capacity_are_skipped() {
        let mut rng = SmallRng::seed_from_u64(3);
        let mut pools = Pools::new(1000, 1);
        for i in 0..300u32 {
            let addr = SocketAddr::from(([81, 0, (i / 250) as u8, (i % 250) as u8 + 1], 6881));
            pools.insert(NodeInfo::new(NodeId::random(&mut rng), addr), 100);
        }
        let bytes = snapshot(&pools, 100);
        let mut small = Pools::new(100, 2);
        let capacity = small.v4.capacity();
        let loaded = restore(&mut small, &bytes, 100, &BootstrapConfig::default()).unwrap();
        assert_eq!(loaded.nodes, capacity);
        assert_eq!(loaded.skipped, 300 - capacity);
        assert_eq!(small.v4.len(), capacity);
    }

    #[test]
    fn an_oversized_file_is_refused_before_it_is_read() {
        let dir = std::env::temp_dir().join(format!("btdht-pool-big-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pool.bin");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(MAX_FILE_BYTES + 1).unwrap(); // sparse: no disk used
        let pools: SharedPools = std::sync::Arc::new(parking_lot::RwLock::new(Pools::new(10, 1)));
        let err = load(&path, &pools, 0, &BootstrapConfig::default()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
