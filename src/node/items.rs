//! BEP 44 in the node: the client lookups that get and put items (`get_immutable`,
//! `get_mutable`, `put_immutable`, `put_mutable`, their collection of items and tokens), and the
//! server side that fills a `get` reply and stores a `put`.

use super::*;

impl Node {
    /// Looks up the BEP 44 immutable item `target` ([`Event::GetItemDone`]): the value some
    /// node returns whose SHA-1 is `target`; values that do not hash to it are ignored and
    /// counted in `rejected`.
    pub fn get_immutable(&mut self, now: Instant, target: NodeId) -> RequestId {
        let op = ItemOp {
            want: Some(ItemWant::Immutable),
            found: None,
            rejected: 0,
            put: None,
        };
        self.start_item_lookup(now, LookupKind::GetItem, target, op)
    }

    /// Looks up the BEP 44 mutable item of `public_key` under `salt` ([`Event::GetItemDone`]):
    /// the one with the highest sequence number, at least `min_seq`, whose signature verifies;
    /// items that do not verify are ignored and counted in `rejected`. Fails if the salt is
    /// over [`MAX_SALT_LEN`](crate::items::MAX_SALT_LEN) bytes.
    pub fn get_mutable(
        &mut self,
        now: Instant,
        public_key: [u8; 32],
        salt: &[u8],
        min_seq: Option<i64>,
    ) -> Result<RequestId, ItemError> {
        check_sizes(&RawValue::from_bytes(b""), salt)?;
        let target = mutable_target(&public_key, salt);
        let op = ItemOp {
            want: Some(ItemWant::Mutable {
                public_key,
                salt: salt.to_vec(),
                min_seq,
            }),
            found: None,
            rejected: 0,
            put: None,
        };
        Ok(self.start_item_lookup(now, LookupKind::GetItem, target, op))
    }

    /// Stores the BEP 44 immutable item `value` on the nodes closest to its target
    /// ([`Event::PutItemDone`]): a get lookup collects their write tokens, then each is sent a
    /// `put`. Fails if the value is over [`MAX_VALUE_LEN`](crate::items::MAX_VALUE_LEN) bytes.
    pub fn put_immutable(&mut self, now: Instant, value: RawValue) -> Result<RequestId, ItemError> {
        check_sizes(&value, b"")?;
        let target = immutable_target(&value);
        let op = ItemOp {
            want: None,
            found: None,
            rejected: 0,
            put: Some(ItemPut::Immutable(value)),
        };
        Ok(self.start_item_lookup(now, LookupKind::PutItem, target, op))
    }

    /// Stores the signed BEP 44 mutable item `item` on the nodes closest to its target, as
    /// [`Node::put_immutable`] does; with `cas`, a node stores it only if its stored sequence
    /// number is `cas` (else it answers error 301, kept in the result). Fails if the item
    /// does not verify or is over the size limits.
    pub fn put_mutable(
        &mut self,
        now: Instant,
        item: MutableItem,
        cas: Option<i64>,
    ) -> Result<RequestId, ItemError> {
        item.verify()?;
        let target = item.target();
        let op = ItemOp {
            want: None,
            found: None,
            rejected: 0,
            put: Some(ItemPut::Mutable { item, cas }),
        };
        Ok(self.start_item_lookup(now, LookupKind::PutItem, target, op))
    }

    /// Starts a get or put lookup with its item part.
    pub(super) fn start_item_lookup(
        &mut self,
        now: Instant,
        kind: LookupKind,
        target: NodeId,
        op: ItemOp,
    ) -> RequestId {
        // The item part is in place before the lookup starts: a lookup may end at once.
        let request = RequestId(self.next_request);
        self.item_ops.insert(request, op);
        let started = self.start_lookup(now, kind, target, None);
        debug_assert_eq!(started, request);
        request
    }

    /// `query` with the sequence number of a mutable get: nodes then leave out the value of
    /// items older than the wanted one.
    pub(super) fn item_query(&self, request: RequestId, mut query: QueryKind) -> QueryKind {
        if let (
            QueryKind::Get { seq, .. },
            Some(ItemOp {
                want:
                    Some(ItemWant::Mutable {
                        min_seq: Some(min), ..
                    }),
                ..
            }),
        ) = (&mut query, self.item_ops.get(&request))
        {
            *seq = Some(min.saturating_sub(1));
        }
        query
    }

    /// Keeps the item of a get lookup's reply if it is the one asked for and checks out.
    pub(super) fn collect_item(&mut self, op: RequestId, target: NodeId, response: &Response) {
        let Some(ItemOp {
            want: Some(want),
            found,
            rejected,
            ..
        }) = self.item_ops.get_mut(&op)
        else {
            return;
        };
        let Some(value) = &response.value else {
            // No item, or not newer than the one asked for.
            return;
        };
        match want {
            ItemWant::Immutable => {
                if check_sizes(value, b"").is_err() || immutable_target(value) != target {
                    *rejected += 1;
                } else if found.is_none() {
                    *found = Some(StoredItem::Immutable(value.clone()));
                }
            }
            ItemWant::Mutable {
                public_key,
                salt,
                min_seq,
            } => {
                let (Some(key), Some(seq), Some(signature)) =
                    (response.key, response.seq, response.signature)
                else {
                    *rejected += 1;
                    return;
                };
                let item = MutableItem {
                    public_key: key,
                    salt: salt.clone(),
                    seq,
                    value: value.clone(),
                    signature,
                };
                if key != *public_key || item.verify().is_err() {
                    *rejected += 1;
                    return;
                }
                if min_seq.is_some_and(|min| seq < min) {
                    return;
                }
                let newer = match found {
                    Some(StoredItem::Mutable(best)) => seq > best.seq,
                    _ => true,
                };
                if newer {
                    *found = Some(StoredItem::Mutable(item));
                }
            }
        }
    }

    /// A get or put lookup ended: report the get, or send the put to the closest nodes that
    /// gave a token, those whose id is BEP 42-valid for their address first
    /// ([`LookupOutcome::store_targets`]).
    pub(super) fn finish_item_lookup(
        &mut self,
        now: Instant,
        request: RequestId,
        op: ItemOp,
        outcome: LookupOutcome,
    ) {
        let Some(put) = op.put else {
            let result = GetItemResult {
                outcome,
                item: op.found,
                rejected: op.rejected,
            };
            self.emit(Event::GetItemDone { request, result });
            return;
        };
        let mut sent = 0;
        for (node, token) in outcome.store_targets(self.config.k) {
            let args = match &put {
                ItemPut::Immutable(value) => krpc::PutArgs {
                    token,
                    value: value.clone(),
                    key: None,
                    salt: None,
                    seq: None,
                    cas: None,
                    signature: None,
                },
                ItemPut::Mutable { item, cas } => krpc::PutArgs {
                    token,
                    value: item.value.clone(),
                    key: Some(item.public_key),
                    salt: (!item.salt.is_empty()).then(|| item.salt.clone()),
                    seq: Some(item.seq),
                    cas: *cas,
                    signature: Some(item.signature),
                },
            };
            if self
                .send_query(
                    now,
                    node.addr,
                    QueryKind::Put(args),
                    Pending::Put { op: request },
                )
                .is_ok()
            {
                sent += 1;
            }
        }
        let result = PutItemResult {
            target: outcome.target,
            outcome,
            sent,
            stored: 0,
            errors: Vec::new(),
        };
        if sent == 0 {
            self.emit(Event::PutItemDone { request, result });
        } else {
            self.operations.insert(
                request,
                Operation::Putting {
                    result,
                    pending: sent,
                },
            );
        }
    }

    /// A put was answered (`None`: acknowledged), refused or lost.
    pub(super) fn put_reply(&mut self, request: RequestId, failure: Option<QueryError>) {
        let Some(Operation::Putting { result, pending }) = self.operations.get_mut(&request) else {
            return;
        };
        *pending = pending.saturating_sub(1);
        match failure {
            None => result.stored += 1,
            Some(QueryError::Remote { code, .. }) => result.errors.push(code),
            Some(_) => {}
        }
        if *pending == 0 {
            self.complete_sending(request);
        }
    }

    /// Puts the item stored under `target` into a `get` reply: an immutable item's value; a
    /// mutable item's key, sequence number and signature, and its value unless the asker's
    /// `seq` shows it has that version or a newer one.
    pub(super) fn fill_item(
        &self,
        now: Instant,
        response: &mut Response,
        target: &NodeId,
        seq: Option<i64>,
    ) {
        match self.items.get(now, target) {
            Some(StoredItem::Immutable(value)) => response.value = Some(value.clone()),
            Some(StoredItem::Mutable(item)) => {
                response.key = Some(item.public_key);
                response.seq = Some(item.seq);
                response.signature = Some(item.signature);
                if seq.is_none_or(|known| item.seq > known) {
                    response.value = Some(item.value.clone());
                }
            }
            None => {}
        }
    }

    /// Stores the item of a `put` whose token was checked; the error code and message to
    /// answer with if it is refused (then nothing is stored).
    pub(super) fn store_item(
        &mut self,
        now: Instant,
        args: krpc::PutArgs,
    ) -> Result<(), (i64, String)> {
        let stored = match args.key {
            None => self.items.put_immutable(now, args.value).map(|_| ()),
            Some(public_key) => {
                let (Some(seq), Some(signature)) = (args.seq, args.signature) else {
                    return Err((ERROR_PROTOCOL, "a mutable put needs seq and sig".into()));
                };
                let item = MutableItem {
                    public_key,
                    salt: args.salt.unwrap_or_default(),
                    seq,
                    value: args.value,
                    signature,
                };
                self.items.put_mutable(now, item, args.cas).map(|_| ())
            }
        };
        stored.map_err(|e| (e.code(), e.to_string()))
    }
}
