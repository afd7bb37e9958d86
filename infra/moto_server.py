"""moto server, patched to model DynamoDB closely enough for our tests.

1. Requests are applied one at a time. moto's DynamoDB applies TransactWriteItems without a
   lock, so two concurrent transactions may both pass `attribute_not_exists` (seen: 8 of 16
   concurrent creates of one email won). Real DynamoDB serialises conflicting transactions.
2. A transaction backs up only the partitions it touches. moto deep-copies every table a
   transaction names, so each transaction costs the table's whole size: a 20,000-item test
   table made moto grow past 2 GB within a thousand transactions.

Usage: python moto_server.py -H 127.0.0.1 -p 5005   (the same arguments as moto_server)
"""

import copy
import threading
import types
from collections import defaultdict

import moto.dynamodb.models as dynamodb_models
import moto.server

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
    touched = defaultdict(set)
    for item in transact_items:
        _, op = next(iter(item.items()))
        name = op.get("TableName")
        table = backend.tables.get(name)
        if table is None:
            continue
        attrs = op.get("Item") or op.get("Key") or {}
        value = attrs.get(table.hash_key_attr, {})
        touched[name].update(str(v) for v in value.values())
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
        snapshot.items = defaultdict(dict)
        for hash_key, entries in table.items.items():
            if str(getattr(hash_key, "value", hash_key)) in touched.get(table.name, ()):
                snapshot.items[hash_key] = copy.deepcopy(entries)
            else:
                snapshot.items[hash_key] = dict(entries) if isinstance(entries, dict) else entries
        return snapshot

    module_copy = dynamodb_models.copy
    dynamodb_models.copy = types.SimpleNamespace(deepcopy=backup, copy=copy.copy)
    try:
        return _transact(self, transact_items)
    finally:
        dynamodb_models.copy = module_copy


dynamodb_models.DynamoDBBackend.transact_write_items = _transact_with_partition_backup

if __name__ == "__main__":
    moto.server.main()
