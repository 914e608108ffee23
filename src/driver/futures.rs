//! The [`Dht`] requests as futures for any executor (feature `async`).

#[allow(clippy::wildcard_imports)]
use super::*;

/// Waits for the answer on `rx` from a task.
#[cfg(feature = "async")]
async fn reply_async<T>(rx: Receiver<T>) -> Result<T, Error> {
    rx.recv_async().await.map_err(|_| Error::Stopped)
}

/// The requests as futures for any executor (feature `async`). Commands are queued without
/// waiting ([`Error::Busy`] if the queue is full). The I/O thread ends each request and wakes
/// the task: lookups and announces at the request timeout (with a partial outcome), pings and
/// samples at the core's query timeout (with [`QueryError::Timeout`]).
#[cfg(feature = "async")]
impl Dht {
    fn ask_now<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<Receiver<T>, Error> {
        let (tx, rx) = channel::bounded(1);
        self.try_send(make(tx))?;
        Ok(rx)
    }

    /// [`Dht::ping`] as a future.
    pub async fn ping_async(&self, addr: SocketAddr) -> Result<NodeId, Error> {
        let rx = self.ask_now(|tx| Command::Ping(addr, tx))?;
        reply_async(rx).await?.map_err(Error::Query)
    }

    /// [`Dht::find_node`] as a future.
    pub async fn find_node_async(&self, target: NodeId) -> Result<LookupOutcome, Error> {
        self.start_lookup(target, None)?.outcome_async().await
    }

    /// [`Dht::announce`] as a future.
    pub async fn announce_async(
        &self,
        info_hash: InfoHash,
        port: Option<u16>,
        seed: bool,
    ) -> Result<AnnounceResult, Error> {
        let rx = self.ask_now(|reply| self.announce_command(info_hash, port, seed, reply))?;
        reply_async(rx).await
    }

    /// [`Dht::sample_infohashes`] as a future.
    pub async fn sample_infohashes_async(
        &self,
        addr: SocketAddr,
        target: NodeId,
    ) -> Result<SampleReply, Error> {
        let rx = self.ask_now(|tx| Command::Sample(addr, target, tx))?;
        reply_async(rx).await?.map_err(Error::Query)
    }

    /// [`Dht::put_immutable`] as a future.
    pub async fn put_immutable_async(&self, value: RawValue) -> Result<PutItemResult, Error> {
        self.put_item_async(PutItemQuery::Immutable(value)).await
    }

    /// [`Dht::put_mutable`] as a future.
    pub async fn put_mutable_async(
        &self,
        item: MutableItem,
        cas: Option<i64>,
    ) -> Result<PutItemResult, Error> {
        self.put_item_async(PutItemQuery::Mutable { item, cas })
            .await
    }

    /// [`Dht::get_immutable`] as a future.
    pub async fn get_immutable_async(&self, target: NodeId) -> Result<GetItemResult, Error> {
        self.get_item_async(GetItemQuery::Immutable(target)).await
    }

    /// [`Dht::get_mutable`] as a future.
    pub async fn get_mutable_async(
        &self,
        public_key: [u8; 32],
        salt: &[u8],
        min_seq: Option<i64>,
    ) -> Result<GetItemResult, Error> {
        self.get_item_async(GetItemQuery::Mutable {
            public_key,
            salt: salt.to_vec(),
            min_seq,
        })
        .await
    }

    async fn get_item_async(&self, item: GetItemQuery) -> Result<GetItemResult, Error> {
        let rx = self.ask_now(|reply| Command::GetItem {
            item,
            timeout: self.timeout,
            reply,
        })?;
        reply_async(rx).await?.map_err(Error::Item)
    }

    async fn put_item_async(&self, item: PutItemQuery) -> Result<PutItemResult, Error> {
        let rx = self.ask_now(|reply| Command::PutItem {
            item,
            timeout: self.timeout,
            reply,
        })?;
        reply_async(rx).await?.map_err(Error::Item)
    }

    /// [`Dht::routing_table`] as a future.
    pub async fn routing_table_async(&self) -> Result<TableSnapshot, Error> {
        reply_async(self.ask_now(Command::RoutingTable)?).await
    }

    /// [`Dht::stats`] as a future.
    pub async fn stats_async(&self) -> Result<DhtStats, Error> {
        reply_async(self.ask_now(Command::Stats)?).await
    }
}
