//! The crawl database: what crawls found, in one SQLite file (feature `db`).
//!
//! A [`Db`] owns the file and its schema: `nodes` (id, address, version, first and last seen,
//! whether it answered BEP 51), `infohashes` (first and last seen, the node whose sample
//! carried it first, its peer count), `torrents` (the parsed metadata) and `files` (one row
//! per file of a torrent). Ids and info-hashes are lowercase hex, times Unix seconds.
//!
//! The file is in WAL mode and writes are batched: they go into one open transaction that
//! [`Db::commit`] ends (the caller commits every [`BATCH`] writes or every second, see
//! [`Db::due`]). A process killed at any moment loses at most the uncommitted batch; the file
//! stays consistent. Rows are upserts, so crawls restarted on one file add to it: the caller
//! seeds a new crawl with [`Db::known_nodes`], holds back the samples of
//! [`Db::sample_deadlines`] (each node's BEP 51 `interval`, in `nodes.next_sample`) and skips
//! [`Db::fetched_infohashes`].

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use super::{Record, Torrent};
use crate::id::InfoHash;

/// Writes per transaction, at most.
pub const BATCH: usize = 1_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS nodes (
    id TEXT NOT NULL,
    address TEXT NOT NULL,
    version TEXT,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    bep51 INTEGER NOT NULL DEFAULT 0,
    next_sample REAL,
    PRIMARY KEY (id, address)
);
CREATE INDEX IF NOT EXISTS nodes_last_seen ON nodes (last_seen);
CREATE TABLE IF NOT EXISTS infohashes (
    infohash TEXT PRIMARY KEY,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    seen_from TEXT NOT NULL,
    peers INTEGER
);
CREATE TABLE IF NOT EXISTS torrents (
    infohash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    piece_length INTEGER NOT NULL,
    files INTEGER NOT NULL,
    private INTEGER NOT NULL,
    version TEXT NOT NULL,
    peer TEXT NOT NULL,
    fetched REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    infohash TEXT NOT NULL,
    idx INTEGER NOT NULL,
    path TEXT NOT NULL,
    length INTEGER NOT NULL,
    PRIMARY KEY (infohash, idx)
);
";

/// Row counts of a crawl database.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DbStats {
    /// Nodes (distinct id and address).
    pub nodes: u64,
    /// Nodes that answered a BEP 51 sample.
    pub bep51_nodes: u64,
    /// Info-hashes.
    pub infohashes: u64,
    /// Info-hashes with a peer count.
    pub with_peers: u64,
    /// Torrents (with metadata).
    pub torrents: u64,
    /// Files of those torrents.
    pub files: u64,
}

/// An open crawl database (see the module documentation).
pub struct Db {
    conn: Connection,
    /// Writes in the open transaction.
    pending: usize,
    /// Unix time of the last commit.
    last_commit: f64,
}

/// A `nodes` row as its NDJSON export line (`type: node`), the same for every [`Store`].
pub(crate) struct NodeRow {
    pub(crate) id: String,
    pub(crate) addr: String,
    pub(crate) version: Option<String>,
    pub(crate) first_seen: f64,
    pub(crate) last_seen: f64,
    pub(crate) bep51: bool,
}

impl NodeRow {
    pub(crate) fn write(self, out: &mut dyn Write) -> io::Result<()> {
        let line = serde_json::json!({
            "type": "node",
            "id": self.id,
            "addr": self.addr,
            "version": self.version,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "bep51": self.bep51,
        });
        writeln!(out, "{line}")
    }
}

/// An `infohashes` row as its NDJSON export line (`type: infohash`).
pub(crate) struct InfoHashRow {
    pub(crate) infohash: String,
    pub(crate) first_seen: f64,
    pub(crate) last_seen: f64,
    pub(crate) from: String,
    pub(crate) peers: Option<i64>,
}

impl InfoHashRow {
    pub(crate) fn write(self, out: &mut dyn Write) -> io::Result<()> {
        let line = serde_json::json!({
            "type": "infohash",
            "infohash": self.infohash,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "from": self.from,
            "peers": self.peers,
        });
        writeln!(out, "{line}")
    }
}

/// A `torrents` row with its `files` as its NDJSON export line (`type: torrent`).
pub(crate) struct TorrentRow {
    pub(crate) infohash: String,
    pub(crate) name: String,
    pub(crate) size: i64,
    pub(crate) piece_length: i64,
    pub(crate) files: i64,
    pub(crate) private: bool,
    pub(crate) version: String,
    pub(crate) peer: String,
    pub(crate) seen: f64,
    /// `{"path", "length"}` objects in file order.
    pub(crate) file_list: serde_json::Value,
}

impl TorrentRow {
    pub(crate) fn write(self, out: &mut dyn Write) -> io::Result<()> {
        let line = serde_json::json!({
            "type": "torrent",
            "infohash": self.infohash,
            "name": self.name,
            "size": self.size,
            "piece_length": self.piece_length,
            "files": self.files,
            "private": self.private,
            "version": self.version,
            "peer": self.peer,
            "seen": self.seen,
            "file_list": self.file_list,
        });
        writeln!(out, "{line}")
    }
}

fn err(e: rusqlite::Error) -> io::Error {
    io::Error::other(e)
}

impl Db {
    /// Opens (or creates) the database at `path`, in WAL mode, with its schema.
    pub fn open(path: &Path) -> io::Result<Db> {
        let conn = Connection::open(path).map_err(err)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(io::Error::other(format!(
                "{}: cannot use WAL mode ({mode})",
                path.display()
            )));
        }
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;")
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        // A file made before `next_sample` existed gets the column.
        let has_next_sample: i64 = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('nodes') WHERE name = 'next_sample'",
                [],
                |r| r.get(0),
            )
            .map_err(err)?;
        if has_next_sample == 0 {
            conn.execute_batch("ALTER TABLE nodes ADD COLUMN next_sample REAL")
                .map_err(err)?;
        }
        Ok(Db {
            conn,
            pending: 0,
            last_commit: 0.0,
        })
    }

    fn begin(&mut self) -> io::Result<()> {
        if self.conn.is_autocommit() {
            self.conn.execute_batch("BEGIN").map_err(err)?;
        }
        self.pending += 1;
        Ok(())
    }

    /// Writes a crawl record; `start_unix` is the Unix time of the crawl's [`crate::time::Instant::ZERO`].
    pub fn record(&mut self, record: &Record, start_unix: f64) -> io::Result<()> {
        let secs = |at: &crate::time::Instant| start_unix + at.as_micros() as f64 / 1e6;
        self.begin()?;
        match record {
            Record::Node {
                id,
                addr,
                version,
                bep51,
                at,
            } => {
                let t = secs(at);
                self.conn
                    .prepare_cached(
                        "INSERT INTO nodes (id, address, version, first_seen, last_seen, bep51)
                         VALUES (?1, ?2, ?3, ?4, ?4, ?5)
                         ON CONFLICT (id, address) DO UPDATE SET
                           last_seen = max(last_seen, excluded.last_seen),
                           version = coalesce(excluded.version, version),
                           bep51 = max(bep51, excluded.bep51)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            id.to_hex(),
                            addr.to_string(),
                            version.as_deref().map(super::version_string),
                            t,
                            *bep51
                        ])
                    })
                    .map_err(err)?;
            }
            Record::InfoHash {
                info_hash,
                from,
                at,
            } => {
                let t = secs(at);
                self.conn
                    .prepare_cached(
                        "INSERT INTO infohashes (infohash, first_seen, last_seen, seen_from)
                         VALUES (?1, ?2, ?2, ?3)
                         ON CONFLICT (infohash) DO UPDATE SET
                           last_seen = max(last_seen, excluded.last_seen)",
                    )
                    .and_then(|mut s| s.execute(params![info_hash.to_hex(), t, from.to_string()]))
                    .map_err(err)?;
                self.conn
                    .prepare_cached(
                        "UPDATE nodes SET bep51 = 1, last_seen = max(last_seen, ?2)
                         WHERE address = ?1",
                    )
                    .and_then(|mut s| s.execute(params![from.to_string(), t]))
                    .map_err(err)?;
            }
            Record::Interval {
                id,
                addr,
                next_sample,
                at,
            } => {
                self.conn
                    .prepare_cached(
                        "INSERT INTO nodes (id, address, first_seen, last_seen, bep51, next_sample)
                         VALUES (?1, ?2, ?3, ?3, 1, ?4)
                         ON CONFLICT (id, address) DO UPDATE SET
                           last_seen = max(last_seen, excluded.last_seen),
                           bep51 = 1,
                           next_sample = excluded.next_sample",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            id.to_hex(),
                            addr.to_string(),
                            secs(at),
                            secs(next_sample)
                        ])
                    })
                    .map_err(err)?;
            }
            Record::Peers {
                info_hash, peers, ..
            } => {
                self.conn
                    .prepare_cached("UPDATE infohashes SET peers = ?2 WHERE infohash = ?1")
                    .and_then(|mut s| s.execute(params![info_hash.to_hex(), *peers as i64]))
                    .map_err(err)?;
            }
        }
        Ok(())
    }

    /// Writes a torrent and its files; `seen` is a Unix time.
    pub fn torrent(&mut self, torrent: &Torrent, seen: f64) -> io::Result<()> {
        self.begin()?;
        let m = &torrent.metadata;
        let hash = m.info_hash.to_hex();
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO torrents
                 (infohash, name, size, piece_length, files, private, version, peer, fetched)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    hash,
                    m.info.name,
                    clamp(m.info.total_size),
                    clamp(m.info.piece_length),
                    clamp(m.info.file_count),
                    m.info.private,
                    m.info.version.as_str(),
                    torrent.peer.to_string(),
                    seen
                ])
            })
            .map_err(err)?;
        self.conn
            .prepare_cached("DELETE FROM files WHERE infohash = ?1")
            .and_then(|mut s| s.execute(params![hash]))
            .map_err(err)?;
        let mut insert = self
            .conn
            .prepare_cached(
                "INSERT INTO files (infohash, idx, path, length) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(err)?;
        for (idx, file) in m.info.files.iter().enumerate() {
            let path = if file.path.is_empty() {
                m.info.name.clone()
            } else {
                file.path_string()
            };
            insert
                .execute(params![hash, idx as i64, path, clamp(file.length)])
                .map_err(err)?;
        }
        Ok(())
    }

    /// Whether the open transaction should be committed at Unix time `now`: [`BATCH`] writes,
    /// or one second since the last commit.
    pub fn due(&self, now: f64) -> bool {
        self.pending >= BATCH || (self.pending > 0 && now - self.last_commit >= 1.0)
    }

    /// Commits the open transaction (if any); `now` is the Unix time.
    pub fn commit(&mut self, now: f64) -> io::Result<()> {
        if !self.conn.is_autocommit() {
            self.conn.execute_batch("COMMIT").map_err(err)?;
        }
        self.pending = 0;
        self.last_commit = now;
        Ok(())
    }

    /// The addresses of the `limit` nodes seen last, to seed a crawl.
    pub fn known_nodes(&self, limit: usize) -> io::Result<Vec<SocketAddr>> {
        let mut stmt = self
            .conn
            .prepare("SELECT address FROM nodes ORDER BY last_seen DESC LIMIT ?1")
            .map_err(err)?;
        let rows = stmt
            .query_map(params![limit as i64], |r| r.get::<_, String>(0))
            .map_err(err)?;
        let mut out = Vec::new();
        for row in rows {
            if let Ok(addr) = row.map_err(err)?.parse() {
                out.push(addr);
            }
        }
        Ok(out)
    }

    /// The nodes not to be sampled before a Unix time later than `after` (BEP 51 intervals),
    /// the `limit` due first: (address, Unix time).
    pub fn sample_deadlines(&self, after: f64, limit: usize) -> io::Result<Vec<(SocketAddr, f64)>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT address, max(next_sample) AS due FROM nodes WHERE next_sample > ?1
                 GROUP BY address ORDER BY due LIMIT ?2",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map(params![after, limit as i64], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?))
            })
            .map_err(err)?;
        let mut out = Vec::new();
        for row in rows {
            let (addr, due) = row.map_err(err)?;
            if let Ok(addr) = addr.parse() {
                out.push((addr, due));
            }
        }
        Ok(out)
    }

    /// The info-hashes that have metadata.
    pub fn fetched_infohashes(&self) -> io::Result<Vec<InfoHash>> {
        let mut stmt = self
            .conn
            .prepare("SELECT infohash FROM torrents")
            .map_err(err)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(err)?;
        let mut out = Vec::new();
        for row in rows {
            if let Ok(hash) = InfoHash::from_hex(&row.map_err(err)?) {
                out.push(hash);
            }
        }
        Ok(out)
    }

    fn count(&self, sql: &str) -> io::Result<u64> {
        let n: i64 = self.conn.query_row(sql, [], |r| r.get(0)).map_err(err)?;
        Ok(n.max(0) as u64)
    }

    /// The row counts.
    pub fn stats(&self) -> io::Result<DbStats> {
        Ok(DbStats {
            nodes: self.count("SELECT count(*) FROM nodes")?,
            bep51_nodes: self.count("SELECT count(*) FROM nodes WHERE bep51 = 1")?,
            infohashes: self.count("SELECT count(*) FROM infohashes")?,
            with_peers: self.count("SELECT count(*) FROM infohashes WHERE peers IS NOT NULL")?,
            torrents: self.count("SELECT count(*) FROM torrents")?,
            files: self.count("SELECT count(*) FROM files")?,
        })
    }

    /// SQLite's `PRAGMA integrity_check`: `ok`, or what is wrong.
    pub fn integrity(&self) -> io::Result<String> {
        self.conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .optional()
            .map_err(err)
            .map(|s| s.unwrap_or_default())
    }

    /// Writes every row as NDJSON: `type` `node`, `infohash` and `torrent` (with its `files`).
    pub fn export_ndjson(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, address, version, first_seen, last_seen, bep51 FROM nodes")
            .map_err(err)?;
        let mut rows = stmt.query([]).map_err(err)?;
        while let Some(r) = rows.next().map_err(err)? {
            NodeRow {
                id: r.get(0).map_err(err)?,
                addr: r.get(1).map_err(err)?,
                version: r.get(2).map_err(err)?,
                first_seen: r.get(3).map_err(err)?,
                last_seen: r.get(4).map_err(err)?,
                bep51: r.get(5).map_err(err)?,
            }
            .write(out)?;
        }
        let mut stmt = self
            .conn
            .prepare("SELECT infohash, first_seen, last_seen, seen_from, peers FROM infohashes")
            .map_err(err)?;
        let mut rows = stmt.query([]).map_err(err)?;
        while let Some(r) = rows.next().map_err(err)? {
            InfoHashRow {
                infohash: r.get(0).map_err(err)?,
                first_seen: r.get(1).map_err(err)?,
                last_seen: r.get(2).map_err(err)?,
                from: r.get(3).map_err(err)?,
                peers: r.get(4).map_err(err)?,
            }
            .write(out)?;
        }
        let mut files = self
            .conn
            .prepare("SELECT path, length FROM files WHERE infohash = ?1 ORDER BY idx")
            .map_err(err)?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT infohash, name, size, piece_length, files, private, version, peer, fetched
                 FROM torrents",
            )
            .map_err(err)?;
        let mut rows = stmt.query([]).map_err(err)?;
        while let Some(r) = rows.next().map_err(err)? {
            let hash = r.get::<_, String>(0).map_err(err)?;
            let list: Vec<serde_json::Value> = files
                .query_map(params![hash], |f| {
                    Ok(serde_json::json!({
                        "path": f.get::<_, String>(0)?,
                        "length": f.get::<_, i64>(1)?,
                    }))
                })
                .map_err(err)?
                .collect::<Result<_, _>>()
                .map_err(err)?;
            TorrentRow {
                infohash: hash,
                name: r.get(1).map_err(err)?,
                size: r.get(2).map_err(err)?,
                piece_length: r.get(3).map_err(err)?,
                files: r.get(4).map_err(err)?,
                private: r.get(5).map_err(err)?,
                version: r.get(6).map_err(err)?,
                peer: r.get(7).map_err(err)?,
                seen: r.get(8).map_err(err)?,
                file_list: list.into(),
            }
            .write(out)?;
        }
        Ok(())
    }
}

/// A crawl database as `btdht crawl` and `btdht db` use it: a SQLite [`Db`] or, with the
/// `postgres` feature, a PostgreSQL [`super::pg::PgDb`]. The methods are those of [`Db`].
pub trait Store: std::fmt::Debug {
    /// Writes a crawl record; `start_unix` is the Unix time of the crawl's
    /// [`crate::time::Instant::ZERO`].
    fn record(&mut self, record: &Record, start_unix: f64) -> io::Result<()>;
    /// Writes a torrent and its files; `seen` is a Unix time.
    fn torrent(&mut self, torrent: &Torrent, seen: f64) -> io::Result<()>;
    /// Whether the open batch should be committed at Unix time `now`.
    fn due(&self, now: f64) -> bool;
    /// Commits the open batch (if any); `now` is the Unix time.
    fn commit(&mut self, now: f64) -> io::Result<()>;
    /// The addresses of the `limit` nodes seen last, to seed a crawl.
    fn known_nodes(&mut self, limit: usize) -> io::Result<Vec<SocketAddr>>;
    /// The nodes whose next BEP 51 sample is due after Unix time `after`, with that time
    /// (the `limit` due first).
    fn sample_deadlines(&mut self, after: f64, limit: usize) -> io::Result<Vec<(SocketAddr, f64)>>;
    /// The info-hashes that have metadata.
    fn fetched_infohashes(&mut self) -> io::Result<Vec<InfoHash>>;
    /// The row counts.
    fn stats(&mut self) -> io::Result<DbStats>;
    /// `ok`, or what is wrong (one word).
    fn integrity(&mut self) -> io::Result<String>;
    /// Writes every row as NDJSON: `type` `node`, `infohash` and `torrent` (with its `files`).
    fn export_ndjson(&mut self, out: &mut dyn Write) -> io::Result<()>;
}

impl Store for Db {
    fn record(&mut self, record: &Record, start_unix: f64) -> io::Result<()> {
        Db::record(self, record, start_unix)
    }
    fn torrent(&mut self, torrent: &Torrent, seen: f64) -> io::Result<()> {
        Db::torrent(self, torrent, seen)
    }
    fn due(&self, now: f64) -> bool {
        Db::due(self, now)
    }
    fn commit(&mut self, now: f64) -> io::Result<()> {
        Db::commit(self, now)
    }
    fn known_nodes(&mut self, limit: usize) -> io::Result<Vec<SocketAddr>> {
        Db::known_nodes(self, limit)
    }
    fn sample_deadlines(&mut self, after: f64, limit: usize) -> io::Result<Vec<(SocketAddr, f64)>> {
        Db::sample_deadlines(self, after, limit)
    }
    fn fetched_infohashes(&mut self) -> io::Result<Vec<InfoHash>> {
        Db::fetched_infohashes(self)
    }
    fn stats(&mut self) -> io::Result<DbStats> {
        Db::stats(self)
    }
    fn integrity(&mut self) -> io::Result<String> {
        Db::integrity(self)
    }
    fn export_ndjson(&mut self, out: &mut dyn Write) -> io::Result<()> {
        Db::export_ndjson(self, out)
    }
}

/// Where a crawl database is: a `postgres://` or `postgresql://` URL, else a SQLite file.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file.
    File(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl Location {
    /// Opens the database (a SQLite file is created if needed; PostgreSQL needs the
    /// `postgres` feature).
    pub fn open(&self) -> io::Result<Box<dyn Store + Send>> {
        match self {
            Location::File(path) => Ok(Box::new(Db::open(path)?)),
            #[cfg(feature = "postgres")]
            Location::Postgres(url) => Ok(Box::new(super::pg::PgDb::connect(url)?)),
            #[cfg(not(feature = "postgres"))]
            Location::Postgres(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "built without the postgres feature",
            )),
        }
    }
}

impl std::str::FromStr for Location {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Location, Self::Err> {
        Ok(
            if s.starts_with("postgres://") || s.starts_with("postgresql://") {
                Location::Postgres(s.to_string())
            } else {
                Location::File(PathBuf::from(s))
            },
        )
    }
}

/// The file name, or the URL with its password hidden.
impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(path) => write!(f, "{}", path.display()),
            Location::Postgres(url) => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
                match rest.split_once('@') {
                    Some((user, host)) if user.contains(':') => {
                        let name = user.split(':').next().unwrap_or_default();
                        write!(f, "{scheme}://{name}:***@{host}")
                    }
                    _ => f.write_str(url),
                }
            }
        }
    }
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Location({self})")
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::NodeId;
    use crate::time::Instant;

    #[test]
    fn records_are_upserted_and_counted_across_reopens() {
        let dir = std::env::temp_dir().join(format!("btdht-db-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("crawl.db");
        let node = Record::Node {
            id: NodeId([7; 20]),
            addr: "127.0.0.9:6881".parse().unwrap(),
            version: Some(b"LT\x01\x02".to_vec()),
            bep51: false,
            at: Instant::ZERO,
        };
        let hash = Record::InfoHash {
            info_hash: NodeId([9; 20]),
            from: "127.0.0.9:6881".parse().unwrap(),
            at: Instant::ZERO,
        };
        {
            let mut db = Db::open(&path).unwrap();
            db.record(&node, 100.0).unwrap();
            db.record(&hash, 100.0).unwrap();
            db.commit(100.0).unwrap();
            // An uncommitted write is lost when the database is dropped without commit.
            db.record(
                &Record::InfoHash {
                    info_hash: NodeId([1; 20]),
                    from: "127.0.0.9:6881".parse().unwrap(),
                    at: Instant::ZERO,
                },
                100.0,
            )
            .unwrap();
        }
        let mut db = Db::open(&path).unwrap();
        let stats = db.stats().unwrap();
        assert_eq!(stats.nodes, 1);
        assert_eq!(stats.bep51_nodes, 1, "its sample marked it");
        assert_eq!(stats.infohashes, 1);
        db.record(&node, 200.0).unwrap();
        db.commit(200.0).unwrap();
        assert_eq!(db.stats().unwrap().nodes, 1, "an upsert, not a second row");
        assert_eq!(
            db.known_nodes(10).unwrap(),
            vec!["127.0.0.9:6881".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(db.integrity().unwrap(), "ok");
        let mut out = Vec::new();
        db.export_ndjson(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("\"last_seen\":200.0"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sample_deadlines_survive_a_reopen_and_old_files_get_the_column() {
        let dir = std::env::temp_dir().join(format!("btdht-db-next-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("crawl.db");
        // A file with the nodes table as it was before `next_sample`.
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE nodes (id TEXT NOT NULL, address TEXT NOT NULL, version TEXT,
                 first_seen REAL NOT NULL, last_seen REAL NOT NULL,
                 bep51 INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (id, address));",
            )
            .unwrap();
        }
        let a: SocketAddr = "127.0.0.9:6881".parse().unwrap();
        let b: SocketAddr = "127.0.0.10:6881".parse().unwrap();
        let interval = |addr, secs| Record::Interval {
            id: NodeId([7; 20]),
            addr,
            next_sample: Instant::from_secs(secs),
            at: Instant::ZERO,
        };
        {
            let mut db = Db::open(&path).unwrap();
            db.record(&interval(a, 21_600), 1_000.0).unwrap();
            db.record(&interval(b, 30), 1_000.0).unwrap();
            db.commit(1_000.0).unwrap();
        }
        let db = Db::open(&path).unwrap();
        // A minute later: a's deadline holds, b's has passed.
        assert_eq!(
            db.sample_deadlines(1_060.0, 10).unwrap(),
            vec![(a, 22_600.0)]
        );
        assert_eq!(
            db.sample_deadlines(0.0, 10).unwrap(),
            vec![(b, 1_030.0), (a, 22_600.0)]
        );
        assert_eq!(db.sample_deadlines(1_060.0, 0).unwrap(), vec![]);
        assert_eq!(db.stats().unwrap().bep51_nodes, 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
