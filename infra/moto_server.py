"""moto server, patched to model DynamoDB closely enough for our tests.

1. Requests are applied one at a time. moto's DynamoDB applies TransactWriteItems without a
   lock, so two concurrent transactions may both pass `attribute_not_exists` (seen: 8 of 16
   concurrent creates of one email won). Real DynamoDB serialises conflicting transactions.
2. A transaction backs up only the partitions it touches. moto deep-copies every table a
   transaction names, so each transaction costs the table's whole size: a 20,000-item test
   table made moto grow past 2 GB within a thousand transactions.
3. A Query of the table (not of an index) reads only its partition. moto builds and sorts a
   list of every item in the table for each such Query, so an import of 2,000 customers had
   moto at 10 GB and a few rows a second, and one of 20,000 never finished.
4. A table's stream keeps its latest records only. DynamoDB drops records after a day; moto
   keeps every one (both images), and a 14,000-row import took it to 23 GB.
5. DynamoDB's model objects are not tracked. moto keeps every instance of a model class it ever
   made (for its `/moto-api/data.json`), so every item written or replaced, and every item a
   transaction's backup copied, stayed in memory: about 1 MB per imported customer.

Usage: python moto_server.py -H 127.0.0.1 -p 5005   (the same arguments as moto_server)
"""

import copy
import threading
import types
from collections import defaultdict

import moto.dynamodb.models as dynamodb_models
import moto.server
from moto.core.common_models import BaseModel

_lock = threading.Lock()
_run_simple = moto.server.run_simple


def _serialised(app):
    def handle(environ, start_response):
        with _lock:
            return list(app(environ, start_response))

    return handle


def _run_simple_serialised(host, port, application, **kwargs):
    return _run_simple(host, port, _serialised(application), **kwargs)


moto.server.run_simple = _run_simple_serialised

_transact = dynamodb_models.DynamoDBBackend.transact_write_items


def _touched_partitions(backend, transact_items):
    touched = defaultdict(list)
    for item in transact_items:
        _, op = next(iter(item.items()))
        name = op.get("TableName")
        table = backend.tables.get(name)
        if table is None:
            continue
        attrs = op.get("Item") or op.get("Key") or {}
        value = attrs.get(table.hash_key_attr)
        if value:
            touched[name].append(dynamodb_models.DynamoType(value))
    return touched


def _transact_with_partition_backup(self, transact_items):
    touched = _touched_partitions(self, transact_items)
    # moto asks for a backup once per operation: make one per table and transaction.
    made = {}

    def backup(table, memo=None):
        if not isinstance(table, dynamodb_models.Table):
            return copy.deepcopy(table, memo)
        if id(table) in made:
            return made[id(table)]
        snapshot = copy.copy(table)
        made[id(table)] = snapshot
        # Partitions the transaction does not name are shared, not copied: it cannot change them.
        snapshot.items = defaultdict(dict, table.items)
        for hash_key in touched.get(table.name, ()):
            if hash_key in table.items:
                snapshot.items[hash_key] = copy.deepcopy(table.items[hash_key])
        return snapshot

    module_copy = dynamodb_models.copy
    dynamodb_models.copy = types.SimpleNamespace(deepcopy=backup, copy=copy.copy)
    try:
        return _transact(self, transact_items)
    finally:
        dynamodb_models.copy = module_copy


dynamodb_models.DynamoDBBackend.transact_write_items = _transact_with_partition_backup

_query = dynamodb_models.Table.query


def _query_one_partition(self, hash_key, *args, **kwargs):
    index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
    if index_name or hash_key is None or not self.range_key_attr:
        return _query(self, hash_key, *args, **kwargs)
    partition = self.items.get(hash_key, {})
    # moto filters `all_items()` down to the partition: hand it the partition alone (requests
    # run one at a time, so the instance attribute is seen by this query only).
    self.all_items = lambda: sorted(partition.values(), key=lambda item: item.range_key)
    try:
        return _query(self, hash_key, *args, **kwargs)
    finally:
        del self.all_items


dynamodb_models.Table.query = _query_one_partition

STREAM_RECORDS_KEPT = 10_000
_stream_add = dynamodb_models.table.StreamShard.add


def _stream_add_bounded(self, old, new):
    _stream_add(self, old, new)
    dropped = len(self.items) - STREAM_RECORDS_KEPT
    if dropped > 0:
        del self.items[:dropped]
        # Sequence numbers go on from where they were: moto counts them from the start.
        self.starting_sequence_number += dropped


dynamodb_models.table.StreamShard.add = _stream_add_bounded

_tracked_new = BaseModel.__new__


def _new_untracked_in_dynamodb(cls, *args, **kwargs):
    if cls.__module__.startswith("moto.dynamodb."):
        return object.__new__(cls)
    return _tracked_new(cls, *args, **kwargs)


BaseModel.__new__ = staticmethod(_new_untracked_in_dynamodb)

if __name__ == "__main__":
    moto.server.main()
