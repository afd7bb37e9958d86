//! Reads a sharded index in global sort order: one query per shard partition, merged on the
//! index sort key. Listing keys are sharded so that bulk writes spread over partitions.

use std::collections::VecDeque;
use std::sync::Arc;

use serde_json::Value;

use super::{Index, Item, KeyMap, KvStore, Query, SortCondition, StoreError};

struct Shard {
    partition: String,
    buffer: VecDeque<Item>,
    next: Option<KeyMap>,
    done: bool,
}

pub struct MergedQuery {
    store: Arc<dyn KvStore>,
    index: Index,
    sort: SortCondition,
    forward: bool,
    page_size: usize,
    shards: Vec<Shard>,
}

impl MergedQuery {
    /// `wanted` is how many items the caller expects to take in all: each shard's first page
    /// holds its share, and later pages are read only when a shard runs dry.
    pub fn new(
        store: Arc<dyn KvStore>,
        index: Index,
        partitions: Vec<String>,
        sort: SortCondition,
        forward: bool,
        wanted: usize,
    ) -> Self {
        let page_size = wanted.div_ceil(partitions.len().max(1)) + 1;
        let shards = partitions
            .into_iter()
            .map(|partition| Shard {
                partition,
                buffer: VecDeque::new(),
                next: None,
                done: false,
            })
            .collect();
        MergedQuery {
            store,
            index,
            sort,
            forward,
            page_size: page_size.clamp(2, 1000),
            shards,
        }
    }

    async fn refill(&mut self) -> Result<(), StoreError> {
        let wanted: Vec<usize> = (0..self.shards.len())
            .filter(|&i| self.shards[i].buffer.is_empty() && !self.shards[i].done)
            .collect();
        let queries: Vec<Query> = wanted
            .iter()
            .map(|&i| {
                let shard = &self.shards[i];
                Query {
                    index: self.index,
                    partition: shard.partition.clone(),
                    sort: self.sort.clone(),
                    forward: self.forward,
                    limit: self.page_size,
                    start_after: shard.next.clone(),
                }
            })
            .collect();
        let pages = self.store.query_many(&queries).await?;
        for (i, page) in wanted.into_iter().zip(pages) {
            let shard = &mut self.shards[i];
            shard.done = page.last_key.is_none();
            shard.next = page.last_key;
            shard.buffer.extend(page.items);
        }
        Ok(())
    }

    /// The next item in merged order, or `None` when every shard is exhausted.
    pub async fn next(&mut self) -> Result<Option<Item>, StoreError> {
        // A shard may return an empty page with a continuation (DynamoDB's 1 MB limit).
        while self.shards.iter().any(|s| s.buffer.is_empty() && !s.done) {
            self.refill().await?;
        }
        let (_, sort_attr) = self.index.key_attributes();
        let sort_of = |item: &Item| {
            item.get(sort_attr)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let mut best: Option<(usize, String)> = None;
        for (i, shard) in self.shards.iter().enumerate() {
            if let Some(head) = shard.buffer.front() {
                let key = sort_of(head).unwrap_or_default();
                let better = match &best {
                    None => true,
                    Some((_, b)) => {
                        if self.forward {
                            key < *b
                        } else {
                            key > *b
                        }
                    }
                };
                if better {
                    best = Some((i, key));
                }
            }
        }
        Ok(best.and_then(|(i, _)| self.shards[i].buffer.pop_front()))
    }
}
