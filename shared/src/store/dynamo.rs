//! The DynamoDB backend (real AWS, or moto server locally).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, DeleteRequest,
    GlobalSecondaryIndex, KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType,
    Put, PutRequest, ScalarAttributeType, StreamSpecification, StreamViewType, TransactWriteItem,
    Update, WriteRequest,
};

use super::{
    BatchOp, Condition, Index, Item, Key, KeyMap, KvStore, PK, Query, QueryPage, SK, SortCondition,
    StoreError, WriteOp, validate_transaction,
};
use crate::backoff::Backoff;

type Attrs = HashMap<String, AttributeValue>;

const BATCH_WRITE_LIMIT: usize = 25;
const BATCH_GET_LIMIT: usize = 100;
/// Transactions cancelled by a concurrent transaction on the same items are retried this often.
const CONFLICT_RETRIES: u32 = 8;

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

fn backend<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Maps an SDK error that is not a condition failure: throttling after the SDK's own retries
/// becomes [`StoreError::Throttled`], a timeout, an unreachable endpoint or a 5xx
/// [`StoreError::Unavailable`], everything else a backend error with the service's message.
fn sdk_error<E, R>(error: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    // No answer, or the service's own fault: worth another try later.
    let unanswered = match &error {
        SdkError::TimeoutError(_) => true,
        SdkError::DispatchFailure(failure) => failure.is_timeout() || failure.is_io(),
        _ => false,
    };
    if unanswered {
        return StoreError::Unavailable(format!(
            "{}",
            aws_sdk_dynamodb::error::DisplayErrorContext(&error)
        ));
    }
    let code = error.code().unwrap_or_default().to_owned();
    if matches!(
        code.as_str(),
        "InternalServerError" | "ServiceUnavailable" | "ServiceUnavailableException"
    ) {
        return StoreError::Unavailable(code);
    }
    if matches!(
        code.as_str(),
        "ProvisionedThroughputExceededException" | "ThrottlingException" | "RequestLimitExceeded"
    ) {
        return StoreError::Throttled;
    }
    if code == "ValidationException" {
        return StoreError::Invalid(error.message().unwrap_or("validation failed").to_owned());
    }
    let message = error.message().map(str::to_owned);
    StoreError::Backend(match message {
        Some(m) => format!("{code}: {m}"),
        None => format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&error)),
    })
}

fn to_attrs(item: &Item) -> Result<Attrs, StoreError> {
    serde_dynamo::to_item(item).map_err(backend)
}

fn from_attrs(attrs: Attrs) -> Result<Item, StoreError> {
    serde_dynamo::from_item(attrs).map_err(backend)
}

fn key_attrs(key: &Key) -> Attrs {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(key.pk.clone())),
        (SK.to_owned(), AttributeValue::S(key.sk.clone())),
    ])
}

/// A condition as (expression, names, values).
struct Expr {
    text: String,
    names: HashMap<String, String>,
    values: Attrs,
}

fn condition_expr(condition: &Condition) -> Result<Expr, StoreError> {
    let mut names = HashMap::from([("#pk".to_owned(), PK.to_owned())]);
    let mut values = Attrs::new();
    let text = match condition {
        Condition::Exists => "attribute_exists(#pk)".to_owned(),
        Condition::NotExists => "attribute_not_exists(#pk)".to_owned(),
        // `=` does not compare NULLs reliably: ask for the attribute's type instead.
        Condition::Equals {
            attribute,
            value: serde_json::Value::Null,
        } => {
            names.insert("#c".into(), attribute.clone());
            values.insert(":c".into(), AttributeValue::S("NULL".into()));
            "attribute_exists(#pk) AND attribute_type(#c, :c)".to_owned()
        }
        Condition::Equals { attribute, value } => {
            names.insert("#c".into(), attribute.clone());
            values.insert(
                ":c".into(),
                serde_dynamo::to_attribute_value(value).map_err(backend)?,
            );
            "attribute_exists(#pk) AND #c = :c".to_owned()
        }
        Condition::AllEqual(pairs) => {
            let mut text = "attribute_exists(#pk)".to_owned();
            for (i, (attribute, value)) in pairs.iter().enumerate() {
                names.insert(format!("#c{i}"), attribute.clone());
                if value.is_null() {
                    values.insert(format!(":c{i}"), AttributeValue::S("NULL".into()));
                    text.push_str(&format!(" AND attribute_type(#c{i}, :c{i})"));
                } else {
                    values.insert(
                        format!(":c{i}"),
                        serde_dynamo::to_attribute_value(value).map_err(backend)?,
                    );
                    text.push_str(&format!(" AND #c{i} = :c{i}"));
                }
            }
            text
        }
    };
    Ok(Expr {
        text,
        names,
        values,
    })
}

fn non_empty<T: Default + PartialEq>(value: T) -> Option<T> {
    if value == T::default() {
        None
    } else {
        Some(value)
    }
}

impl DynamoStore {
    /// One `BatchGetItem` of at most 100 keys, repeated for what DynamoDB left unprocessed.
    async fn batch_get_chunk(&self, chunk: &[&Key]) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::with_capacity(chunk.len());
        let mut pending: Vec<Attrs> = chunk.iter().map(|k| key_attrs(k)).collect();
        let mut backoff = Backoff::default();
        while !pending.is_empty() {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(true)
                .build()
                .map_err(backend)?;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(sdk_error)?;
            if let Some(mut responses) = out.responses {
                for attrs in responses.remove(&self.table).unwrap_or_default() {
                    found.push(from_attrs(attrs)?);
                }
            }
            if let Some(left) = out
                .unprocessed_keys
                .and_then(|mut rest| rest.remove(&self.table))
            {
                pending = left.keys;
            }
            if !pending.is_empty() && !backoff.wait().await {
                return Err(StoreError::Throttled);
            }
        }
        Ok(found)
    }

    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Creates the table with the keys and indexes `template.yaml` declares, for local runs
    /// and tests, without a stream: moto copies a table's whole stream on every transaction,
    /// which makes long test runs slow and memory-hungry. Does nothing when it exists.
    pub async fn ensure_table(&self) -> Result<(), StoreError> {
        self.create_table(false).await
    }

    /// Creates the table, with a stream of new and old images when `with_stream`.
    pub async fn create_table(&self, with_stream: bool) -> Result<(), StoreError> {
        match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.code() == Some("ResourceNotFoundException") => {}
            Err(e) => return Err(sdk_error(e)),
        }
        let string_attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(backend)
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(backend)
        };
        let mut request = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key(PK, KeyType::Hash)?)
            .key_schema(key(SK, KeyType::Range)?)
            .attribute_definitions(string_attr(PK)?)
            .attribute_definitions(string_attr(SK)?);
        if with_stream {
            request = request.stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build()
                    .map_err(backend)?,
            );
        }
        for index in Index::SECONDARY {
            let (p, s) = index.key_attributes();
            request = request
                .attribute_definitions(string_attr(p)?)
                .attribute_definitions(string_attr(s)?)
                .global_secondary_indexes(
                    GlobalSecondaryIndex::builder()
                        .index_name(index.name())
                        .key_schema(key(p, KeyType::Hash)?)
                        .key_schema(key(s, KeyType::Range)?)
                        .projection(
                            Projection::builder()
                                .projection_type(ProjectionType::All)
                                .build(),
                        )
                        .build()
                        .map_err(backend)?,
                );
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ResourceInUseException") => Ok(()),
            Err(e) => Err(sdk_error(e)),
        }
    }

    fn transact_item(&self, op: &WriteOp) -> Result<TransactWriteItem, StoreError> {
        let built = match op {
            WriteOp::PutEncoded { .. } => {
                return self.transact_item(&op.clone().with_attributes()?);
            }
            WriteOp::Put { item, condition } => {
                let mut put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(to_attrs(item)?));
                if let Some(c) = condition {
                    let e = condition_expr(c)?;
                    put = put
                        .condition_expression(e.text)
                        .set_expression_attribute_names(Some(e.names))
                        .set_expression_attribute_values(non_empty(e.values));
                }
                TransactWriteItem::builder().put(put.build().map_err(backend)?)
            }
            WriteOp::Delete { key, condition } => {
                let mut delete = Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_attrs(key)));
                if let Some(c) = condition {
                    let e = condition_expr(c)?;
                    delete = delete
                        .condition_expression(e.text)
                        .set_expression_attribute_names(Some(e.names))
                        .set_expression_attribute_values(non_empty(e.values));
                }
                TransactWriteItem::builder().delete(delete.build().map_err(backend)?)
            }
            WriteOp::Check { key, condition } => {
                let e = condition_expr(condition)?;
                TransactWriteItem::builder().condition_check(
                    ConditionCheck::builder()
                        .table_name(&self.table)
                        .set_key(Some(key_attrs(key)))
                        .condition_expression(e.text)
                        .set_expression_attribute_names(Some(e.names))
                        .set_expression_attribute_values(non_empty(e.values))
                        .build()
                        .map_err(backend)?,
                )
            }
            WriteOp::Add {
                key,
                attribute,
                delta,
                condition,
            } => {
                let mut names = HashMap::from([("#a".to_owned(), attribute.clone())]);
                let mut values =
                    HashMap::from([(":d".to_owned(), AttributeValue::N(delta.to_string()))]);
                let mut update = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_attrs(key)))
                    .update_expression("ADD #a :d");
                if let Some(c) = condition {
                    let e = condition_expr(c)?;
                    names.extend(e.names);
                    values.extend(e.values);
                    update = update.condition_expression(e.text);
                }
                TransactWriteItem::builder().update(
                    update
                        .set_expression_attribute_names(Some(names))
                        .set_expression_attribute_values(Some(values))
                        .build()
                        .map_err(backend)?,
                )
            }
        };
        Ok(built.build())
    }

    async fn transact_once(&self, items: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            // The SDK retries an attempt that timed out; with a token DynamoDB answers a retry of
            // an applied transaction with success instead of failing its conditions.
            .client_request_token(uuid::Uuid::new_v4().to_string())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) => {
                let service = err.as_service_error();
                if let Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(cancelled)) = service {
                    let reasons = cancelled.cancellation_reasons();
                    if let Some(index) = reasons
                        .iter()
                        .position(|r| r.code() == Some("ConditionalCheckFailed"))
                    {
                        return Err(StoreError::ConditionFailed { index });
                    }
                    if reasons.iter().any(|r| {
                        matches!(r.code(), Some("TransactionConflict"))
                    }) {
                        return Err(StoreError::Conflict);
                    }
                    if reasons.iter().any(|r| {
                        matches!(r.code(), Some("ThrottlingError" | "ProvisionedThroughputExceeded"))
                    }) {
                        return Err(StoreError::Throttled);
                    }
                }
                if err.code() == Some("TransactionConflictException") {
                    return Err(StoreError::Conflict);
                }
                Err(sdk_error(err))
            }
        }
    }
}

/// A single conditional write's error: a failed condition is operation 0's.
fn single_error<E, R>(error: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if error.code() == Some("ConditionalCheckFailedException") {
        StoreError::ConditionFailed { index: 0 }
    } else {
        sdk_error(error)
    }
}

impl DynamoStore {
    async fn write_one(&self, op: &WriteOp) -> Result<(), StoreError> {
        let condition = op.condition().map(condition_expr).transpose()?;
        let (text, mut names, mut values) = match condition {
            Some(e) => (Some(e.text), e.names, e.values),
            None => (None, HashMap::new(), Attrs::new()),
        };
        match op {
            WriteOp::PutEncoded { .. } => {
                Box::pin(self.write_one(&op.clone().with_attributes()?)).await
            }
            WriteOp::Put { item, .. } => self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(to_attrs(item)?))
                .set_condition_expression(text)
                .set_expression_attribute_names(non_empty(names))
                .set_expression_attribute_values(non_empty(values))
                .send()
                .await
                .map(|_| ())
                .map_err(single_error),
            WriteOp::Delete { key, .. } => self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key_attrs(key)))
                .set_condition_expression(text)
                .set_expression_attribute_names(non_empty(names))
                .set_expression_attribute_values(non_empty(values))
                .send()
                .await
                .map(|_| ())
                .map_err(single_error),
            WriteOp::Add {
                key,
                attribute,
                delta,
                ..
            } => {
                names.insert("#a".into(), attribute.clone());
                values.insert(":d".into(), AttributeValue::N(delta.to_string()));
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(key_attrs(key)))
                    .update_expression("ADD #a :d")
                    .set_condition_expression(text)
                    .set_expression_attribute_names(Some(names))
                    .set_expression_attribute_values(Some(values))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(single_error)
            }
            WriteOp::Check { .. } => Err(StoreError::Invalid("a lone check writes nothing".into())),
        }
    }
}

fn key_condition(query: &Query) -> (String, HashMap<String, String>, Attrs) {
    let (p, s) = query.index.key_attributes();
    let mut names = HashMap::from([("#p".to_owned(), p.to_owned())]);
    let mut values = HashMap::from([(":p".to_owned(), AttributeValue::S(query.partition.clone()))]);
    let mut text = "#p = :p".to_owned();
    let mut sort = |clause: &str, vals: Vec<(&str, &String)>| {
        names.insert("#s".into(), s.to_owned());
        for (k, v) in vals {
            values.insert(k.to_owned(), AttributeValue::S(v.clone()));
        }
        text.push_str(" AND ");
        text.push_str(clause);
    };
    match &query.sort {
        SortCondition::Any => {}
        SortCondition::Equals(v) => sort("#s = :s", vec![(":s", v)]),
        SortCondition::BeginsWith(v) => sort("begins_with(#s, :s)", vec![(":s", v)]),
        SortCondition::Between(a, b) => sort("#s BETWEEN :a AND :b", vec![(":a", a), (":b", b)]),
    }
    (text, names, values)
}

fn start_key(map: &KeyMap) -> Attrs {
    map.iter()
        .map(|(k, v)| (k.clone(), AttributeValue::S(v.clone())))
        .collect()
}

fn page_key(attrs: &Attrs) -> KeyMap {
    attrs
        .iter()
        .filter_map(|(k, v)| v.as_s().ok().map(|s| (k.clone(), s.clone())))
        .collect()
}

#[async_trait]
impl KvStore for DynamoStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_attrs(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        out.item.map(from_attrs).transpose()
    }

    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Item>, StoreError> {
        let mut unique: Vec<&Key> = keys.iter().collect();
        unique.sort();
        unique.dedup();
        // Chunks of 100 keys go out together: a read of 101 keys takes one round trip, not two.
        let chunks = futures::future::try_join_all(
            unique
                .chunks(BATCH_GET_LIMIT)
                .map(|chunk| self.batch_get_chunk(chunk)),
        )
        .await?;
        Ok(chunks.into_iter().flatten().collect())
    }

    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        validate_transaction(&ops)?;
        // One write needs no transaction (which would cost twice the capacity).
        if let [op] = ops.as_slice()
            && !matches!(op, WriteOp::Check { .. })
        {
            return self.write_one(op).await;
        }
        let items = ops
            .iter()
            .map(|op| self.transact_item(op))
            .collect::<Result<Vec<_>, _>>()?;
        let mut backoff = Backoff::new(
            Duration::from_millis(20),
            Duration::from_millis(500),
            CONFLICT_RETRIES,
        );
        loop {
            match self.transact_once(items.clone()).await {
                Err(StoreError::Conflict | StoreError::Throttled) if backoff.wait().await => {
                    continue;
                }
                other => return other,
            }
        }
    }

    async fn batch_write(&self, ops: Vec<BatchOp>) -> Result<(), StoreError> {
        // One request may not name an item twice: keep the last write of each key.
        let mut last: HashMap<Key, BatchOp> = HashMap::new();
        let mut order = Vec::new();
        for op in ops {
            let key = match &op {
                BatchOp::Put(item) => Key::of(item)?,
                BatchOp::Delete(key) => key.clone(),
            };
            if last.insert(key.clone(), op).is_none() {
                order.push(key);
            }
        }
        let requests = order
            .into_iter()
            .filter_map(|k| last.remove(&k))
            .map(|op| -> Result<WriteRequest, StoreError> {
                Ok(match op {
                    BatchOp::Put(item) => WriteRequest::builder()
                        .put_request(
                            PutRequest::builder()
                                .set_item(Some(to_attrs(&item)?))
                                .build()
                                .map_err(backend)?,
                        )
                        .build(),
                    BatchOp::Delete(key) => WriteRequest::builder()
                        .delete_request(
                            DeleteRequest::builder()
                                .set_key(Some(key_attrs(&key)))
                                .build()
                                .map_err(backend)?,
                        )
                        .build(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for chunk in requests.chunks(BATCH_WRITE_LIMIT) {
            let mut pending = chunk.to_vec();
            let mut backoff = Backoff::default();
            while !pending.is_empty() {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, std::mem::take(&mut pending))
                    .send()
                    .await;
                // Why the chunk is not done yet: what the caller hears if the retries run out.
                let unfinished = match out {
                    Ok(out) => {
                        if let Some(mut rest) = out.unprocessed_items {
                            pending = rest.remove(&self.table).unwrap_or_default();
                        }
                        StoreError::Throttled
                    }
                    Err(e) => match sdk_error(e) {
                        // Puts and deletes are idempotent: a timed-out chunk is simply sent again.
                        e @ (StoreError::Throttled | StoreError::Unavailable(_)) => {
                            pending = chunk.to_vec();
                            e
                        }
                        other => return Err(other),
                    },
                };
                if !pending.is_empty() && !backoff.wait().await {
                    return Err(unfinished);
                }
            }
        }
        Ok(())
    }

    async fn query(&self, query: &Query) -> Result<QueryPage, StoreError> {
        let (text, names, values) = key_condition(query);
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(text)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .scan_index_forward(query.forward)
            .limit(i32::try_from(query.limit.max(1)).unwrap_or(i32::MAX))
            .set_exclusive_start_key(query.start_after.as_ref().map(start_key));
        if query.index != Index::Main {
            request = request.index_name(query.index.name());
        } else {
            request = request.consistent_read(true);
        }
        let out = request.send().await.map_err(sdk_error)?;
        let last_key = out.last_evaluated_key.as_ref().map(page_key);
        let items = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_attrs)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(QueryPage { items, last_key })
    }
}
