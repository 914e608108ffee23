//! The crawl database in a shared PostgreSQL (feature `postgres`): [`PgDb`].
//!
//! It has the tables of the SQLite database ([`super::db`]): `nodes`, `infohashes`,
//! `torrents` and `files`, with the same columns (times are Unix seconds in `DOUBLE
//! PRECISION`, `bep51` and `private` are `BOOLEAN`). Every write is an upsert, so crawlers on
//! several machines (shards) and restarted crawls merge into one database: `first_seen` keeps
//! the earliest time and the node that saw an info-hash first, `last_seen` the latest,
//! `bep51` is set once any crawler saw a sample, the peer count of an info-hash is the largest
//! reported, and a torrent's row and files are those written last.
//!
//! Writes go into one open transaction that [`Store::commit`] ends, as with SQLite; a crawler
//! that dies loses at most that batch. The schema is created under an advisory lock, so
//! crawlers starting together do not race on it. The connection is without TLS.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, Config, NoTls, Statement};

use super::db::{BATCH, DbStats, InfoHashRow, NodeRow, Store, TorrentRow};
use super::{Record, Torrent};
use crate::id::InfoHash;

/// Connect timeout when the URL gives none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Advisory lock key held while the schema is created.
const SCHEMA_LOCK: i64 = 0x6274_6468_7400_0001;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS nodes (
    id TEXT NOT NULL,
    address TEXT NOT NULL,
    version TEXT,
    first_seen DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL,
    bep51 BOOLEAN NOT NULL DEFAULT FALSE,
    next_sample DOUBLE PRECISION,
    PRIMARY KEY (id, address)
);
ALTER TABLE nodes ADD COLUMN IF NOT EXISTS next_sample DOUBLE PRECISION;
CREATE INDEX IF NOT EXISTS nodes_last_seen ON nodes (last_seen);
CREATE INDEX IF NOT EXISTS nodes_address ON nodes (address);
CREATE TABLE IF NOT EXISTS infohashes (
    infohash TEXT PRIMARY KEY,
    first_seen DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL,
    seen_from TEXT NOT NULL,
    peers BIGINT
);
CREATE TABLE IF NOT EXISTS torrents (
    infohash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    size BIGINT NOT NULL,
    piece_length BIGINT NOT NULL,
    files BIGINT NOT NULL,
    private BOOLEAN NOT NULL,
    version TEXT NOT NULL,
    peer TEXT NOT NULL,
    fetched DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    infohash TEXT NOT NULL,
    idx BIGINT NOT NULL,
    path TEXT NOT NULL,
    length BIGINT NOT NULL,
    PRIMARY KEY (infohash, idx)
);
";

/// The prepared writes.
struct Statements {
    node: Statement,
    infohash: Statement,
    sampled: Statement,
    interval: Statement,
    peers: Statement,
    torrent: Statement,
    delete_files: Statement,
    file: Statement,
}

/// A crawl database in PostgreSQL (see the module documentation).
pub struct PgDb {
    client: Client,
    statements: Statements,
    /// Whether a transaction is open.
    open: bool,
    /// Writes in the open transaction.
    pending: usize,
    /// Unix time of the last commit.
    last_commit: f64,
}

fn err(e: postgres::Error) -> io::Error {
    io::Error::other(e)
}

/// PostgreSQL text must not hold NUL; metadata from the network may.
fn text(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

impl PgDb {
    /// Connects to the database at `url` (`postgres://user[:password]@host[:port]/dbname`, or
    /// any form that libpq accepts) and creates the schema if needed.
    pub fn connect(url: &str) -> io::Result<PgDb> {
        let mut config: Config = url.parse().map_err(err)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let mut client = config.connect(NoTls).map_err(err)?;
        let mut tx = client.transaction().map_err(err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .map_err(err)?;
        tx.batch_execute(SCHEMA).map_err(err)?;
        tx.commit().map_err(err)?;
        let statements = Statements {
            node: client
                .prepare(
                    "INSERT INTO nodes AS n (id, address, version, first_seen, last_seen, bep51)
                     VALUES ($1, $2, $3, $4, $4, $5)
                     ON CONFLICT (id, address) DO UPDATE SET
                       first_seen = LEAST(n.first_seen, excluded.first_seen),
                       last_seen = GREATEST(n.last_seen, excluded.last_seen),
                       version = coalesce(excluded.version, n.version),
                       bep51 = n.bep51 OR excluded.bep51",
                )
                .map_err(err)?,
            infohash: client
                .prepare(
                    "INSERT INTO infohashes AS i (infohash, first_seen, last_seen, seen_from)
                     VALUES ($1, $2, $2, $3)
                     ON CONFLICT (infohash) DO UPDATE SET
                       seen_from = CASE WHEN excluded.first_seen < i.first_seen
                                   THEN excluded.seen_from ELSE i.seen_from END,
                       first_seen = LEAST(i.first_seen, excluded.first_seen),
                       last_seen = GREATEST(i.last_seen, excluded.last_seen)",
                )
                .map_err(err)?,
            sampled: client
                .prepare(
                    "UPDATE nodes SET bep51 = TRUE, last_seen = GREATEST(last_seen, $2)
                     WHERE address = $1",
                )
                .map_err(err)?,
            interval: client
                .prepare(
                    "INSERT INTO nodes AS n (id, address, first_seen, last_seen, bep51, next_sample)
                     VALUES ($1, $2, $3, $3, TRUE, $4)
                     ON CONFLICT (id, address) DO UPDATE SET
                       last_seen = GREATEST(n.last_seen, excluded.last_seen),
                       bep51 = TRUE,
                       next_sample = excluded.next_sample",
                )
                .map_err(err)?,
            peers: client
                .prepare("UPDATE infohashes SET peers = GREATEST(peers, $2) WHERE infohash = $1")
                .map_err(err)?,
            torrent: client
                .prepare(
                    "INSERT INTO torrents
                     (infohash, name, size, piece_length, files, private, version, peer, fetched)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                     ON CONFLICT (infohash) DO UPDATE SET
                       name = excluded.name, size = excluded.size,
                       piece_length = excluded.piece_length, files = excluded.files,
                       private = excluded.private, version = excluded.version,
                       peer = excluded.peer, fetched = excluded.fetched",
                )
                .map_err(err)?,
            delete_files: client
                .prepare("DELETE FROM files WHERE infohash = $1")
                .map_err(err)?,
            file: client
                .prepare("INSERT INTO files (infohash, idx, path, length) VALUES ($1, $2, $3, $4)")
                .map_err(err)?,
        };
        Ok(PgDb {
            client,
            statements,
            open: false,
            pending: 0,
            last_commit: 0.0,
        })
    }

    fn begin(&mut self) -> io::Result<()> {
        if !self.open {
            self.client.batch_execute("BEGIN").map_err(err)?;
            self.open = true;
        }
        self.pending += 1;
        Ok(())
    }

    /// Ends a batch that reached [`BATCH`] writes, so that one batch stays bounded.
    fn end_full_batch(&mut self, now: f64) -> io::Result<()> {
        if self.pending >= BATCH {
            self.commit(now)?;
        }
        Ok(())
    }

    fn count(&mut self, sql: &str) -> io::Result<u64> {
        let row = self.client.query_one(sql, &[]).map_err(err)?;
        let n: i64 = row.try_get(0).map_err(err)?;
        Ok(n.max(0) as u64)
    }
}

impl Store for PgDb {
    fn record(&mut self, record: &Record, start_unix: f64) -> io::Result<()> {
        let secs = |at: &crate::time::Instant| start_unix + at.as_micros() as f64 / 1e6;
        self.begin()?;
        let now = match record {
            Record::Node {
                id,
                addr,
                version,
                bep51,
                at,
            } => {
                let t = secs(at);
                let version = version.as_deref().map(super::version_string);
                self.client
                    .execute(
                        &self.statements.node,
                        &[&id.to_hex(), &addr.to_string(), &version, &t, bep51],
                    )
                    .map_err(err)?;
                t
            }
            Record::InfoHash {
                info_hash,
                from,
                at,
            } => {
                let t = secs(at);
                let from = from.to_string();
                self.client
                    .execute(&self.statements.infohash, &[&info_hash.to_hex(), &t, &from])
                    .map_err(err)?;
                self.client
                    .execute(&self.statements.sampled, &[&from, &t])
                    .map_err(err)?;
                t
            }
            Record::Interval {
                id,
                addr,
                next_sample,
                at,
            } => {
                let t = secs(at);
                self.client
                    .execute(
                        &self.statements.interval,
                        &[&id.to_hex(), &addr.to_string(), &t, &secs(next_sample)],
                    )
                    .map_err(err)?;
                t
            }
            Record::Peers {
                info_hash,
                peers,
                at,
                ..
            } => {
                let peers = i64::try_from(*peers).unwrap_or(i64::MAX);
                self.client
                    .execute(&self.statements.peers, &[&info_hash.to_hex(), &peers])
                    .map_err(err)?;
                secs(at)
            }
        };
        self.end_full_batch(now)
    }

    fn torrent(&mut self, torrent: &Torrent, seen: f64) -> io::Result<()> {
        self.begin()?;
        let m = &torrent.metadata;
        let hash = m.info_hash.to_hex();
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.client
            .execute(
                &self.statements.torrent,
                &[
                    &hash,
                    &text(&m.info.name),
                    &clamp(m.info.total_size),
                    &clamp(m.info.piece_length),
                    &clamp(m.info.file_count),
                    &m.info.private,
                    &m.info.version.as_str(),
                    &torrent.peer.to_string(),
                    &seen,
                ],
            )
            .map_err(err)?;
        self.client
            .execute(&self.statements.delete_files, &[&hash])
            .map_err(err)?;
        for (idx, file) in m.info.files.iter().enumerate() {
            let path = if file.path.is_empty() {
                m.info.name.clone()
            } else {
                file.path_string()
            };
            self.client
                .execute(
                    &self.statements.file,
                    &[&hash, &(idx as i64), &text(&path), &clamp(file.length)],
                )
                .map_err(err)?;
        }
        self.end_full_batch(seen)
    }

    fn due(&self, now: f64) -> bool {
        self.pending >= BATCH || (self.pending > 0 && now - self.last_commit >= 1.0)
    }

    fn commit(&mut self, now: f64) -> io::Result<()> {
        if self.open {
            self.client.batch_execute("COMMIT").map_err(err)?;
            self.open = false;
        }
        self.pending = 0;
        self.last_commit = now;
        Ok(())
    }

    fn known_nodes(&mut self, limit: usize) -> io::Result<Vec<SocketAddr>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client
            .query(
                "SELECT address FROM nodes ORDER BY last_seen DESC LIMIT $1",
                &[&limit],
            )
            .map_err(err)?;
        Ok(rows
            .iter()
            .filter_map(|r| r.try_get::<_, String>(0).ok()?.parse().ok())
            .collect())
    }

    fn sample_deadlines(&mut self, after: f64, limit: usize) -> io::Result<Vec<(SocketAddr, f64)>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client
            .query(
                "SELECT address, max(next_sample) AS due FROM nodes WHERE next_sample > $1
                 GROUP BY address ORDER BY due LIMIT $2",
                &[&after, &limit],
            )
            .map_err(err)?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let addr = r.try_get::<_, String>(0).ok()?.parse().ok()?;
                Some((addr, r.try_get::<_, f64>(1).ok()?))
            })
            .collect())
    }

    fn fetched_infohashes(&mut self) -> io::Result<Vec<InfoHash>> {
        let rows = self
            .client
            .query("SELECT infohash FROM torrents", &[])
            .map_err(err)?;
        Ok(rows
            .iter()
            .filter_map(|r| InfoHash::from_hex(&r.try_get::<_, String>(0).ok()?).ok())
            .collect())
    }

    fn stats(&mut self) -> io::Result<DbStats> {
        Ok(DbStats {
            nodes: self.count("SELECT count(*) FROM nodes")?,
            bep51_nodes: self.count("SELECT count(*) FROM nodes WHERE bep51")?,
            infohashes: self.count("SELECT count(*) FROM infohashes")?,
            with_peers: self.count("SELECT count(*) FROM infohashes WHERE peers IS NOT NULL")?,
            torrents: self.count("SELECT count(*) FROM torrents")?,
            files: self.count("SELECT count(*) FROM files")?,
        })
    }

    /// `ok`, or how many files rows have no torrent (PostgreSQL checks its own storage).
    fn integrity(&mut self) -> io::Result<String> {
        let orphans = self.count(
            "SELECT count(*) FROM files f
             WHERE NOT EXISTS (SELECT 1 FROM torrents t WHERE t.infohash = f.infohash)",
        )?;
        Ok(if orphans == 0 {
            "ok".to_string()
        } else {
            format!("{orphans}_files_without_torrent")
        })
    }

    fn export_ndjson(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let none: [&(dyn postgres::types::ToSql + Sync); 0] = [];
        let mut rows = self
            .client
            .query_raw(
                "SELECT id, address, version, first_seen, last_seen, bep51 FROM nodes",
                none,
            )
            .map_err(err)?;
        while let Some(r) = rows.next().map_err(err)? {
            NodeRow {
                id: r.try_get(0).map_err(err)?,
                addr: r.try_get(1).map_err(err)?,
                version: r.try_get(2).map_err(err)?,
                first_seen: r.try_get(3).map_err(err)?,
                last_seen: r.try_get(4).map_err(err)?,
                bep51: r.try_get(5).map_err(err)?,
            }
            .write(out)?;
        }
        drop(rows);
        let mut rows = self
            .client
            .query_raw(
                "SELECT infohash, first_seen, last_seen, seen_from, peers FROM infohashes",
                none,
            )
            .map_err(err)?;
        while let Some(r) = rows.next().map_err(err)? {
            InfoHashRow {
                infohash: r.try_get(0).map_err(err)?,
                first_seen: r.try_get(1).map_err(err)?,
                last_seen: r.try_get(2).map_err(err)?,
                from: r.try_get(3).map_err(err)?,
                peers: r.try_get(4).map_err(err)?,
            }
            .write(out)?;
        }
        drop(rows);
        let mut rows = self
            .client
            .query_raw(
                "SELECT t.infohash, t.name, t.size, t.piece_length, t.files, t.private,
                        t.version, t.peer, t.fetched,
                        coalesce((SELECT json_agg(json_build_object('path', f.path,
                                                                    'length', f.length)
                                                  ORDER BY f.idx)
                                  FROM files f WHERE f.infohash = t.infohash), '[]')::text
                 FROM torrents t",
                none,
            )
            .map_err(err)?;
        while let Some(r) = rows.next().map_err(err)? {
            let file_list: serde_json::Value =
                serde_json::from_str(&r.try_get::<_, String>(9).map_err(err)?)
                    .map_err(io::Error::other)?;
            TorrentRow {
                infohash: r.try_get(0).map_err(err)?,
                name: r.try_get(1).map_err(err)?,
                size: r.try_get(2).map_err(err)?,
                piece_length: r.try_get(3).map_err(err)?,
                files: r.try_get(4).map_err(err)?,
                private: r.try_get(5).map_err(err)?,
                version: r.try_get(6).map_err(err)?,
                peer: r.try_get(7).map_err(err)?,
                seen: r.try_get(8).map_err(err)?,
                file_list,
            }
            .write(out)?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for PgDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgDb")
            .field("open", &self.open)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}
