"""Patch: TransactWriteItems backs up the items it touches, not whole tables.

moto behaviour changed: ``DynamoDBBackend.transact_write_items`` deep-copies every table a
transaction names before applying it, so it can put the copies back when the transaction is
cancelled. Each transaction then costs time and memory in proportion to the whole table (measured:
a 1,000-step run on one set of tables took over 14 minutes and moto grew past 8 GB), where real
DynamoDB's cost depends only on the items written. Here the wrapper keeps a copy of each item the
transaction names (at most 100), lets moto's own code run with the table copy made an identity, and
on any error puts those items back as they were: the same all-or-nothing outcome, per item.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

_state = threading.local()


def apply() -> None:
    from moto.dynamodb import models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    original = DynamoDBBackend.transact_write_items
    if getattr(original, "_moto_ext_patched", False):
        return

    class _TableCopyIsIdentity:
        """``copy`` as moto's DynamoDB backend module sees it: tables are not copied inside a transaction."""

        def deepcopy(self, value: Any, memo: Any = None) -> Any:
            if isinstance(value, Table) and getattr(_state, "active", False):
                return value
            return copy.deepcopy(value, memo)

        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

    models.copy = _TableCopyIsIdentity()  # type: ignore[attr-defined]

    def item_key(backend: Any, operation: dict[str, Any]) -> tuple[Any, Any, Any] | None:
        table = backend.tables.get(operation.get("TableName"))
        if table is None:
            return None
        key = operation.get("Item") if "Item" in operation else operation.get("Key")
        if not isinstance(key, dict) or table.hash_key_attr not in key:
            return None  # malformed: moto's own validation rejects it
        if table.range_key_attr is not None and table.range_key_attr not in key:
            return None
        hash_value = DynamoType(key[table.hash_key_attr])
        range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr is not None else None
        return table, hash_value, range_value

    def restore(table: Any, hash_value: Any, range_value: Any, item: Any) -> None:
        if range_value is not None:
            if item is None:
                table.items.get(hash_value, {}).pop(range_value, None)
            else:
                table.items[hash_value][range_value] = item
        elif item is None:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = item

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        before: list[tuple[Any, Any, Any, Any]] = []
        for entry in transact_items if len(transact_items) <= 100 else []:
            operation = next(iter(entry.values()), None) if isinstance(entry, dict) else None
            located = item_key(self, operation) if isinstance(operation, dict) else None
            if located is not None:
                table, hash_value, range_value = located
                current = table.get_item(hash_value, range_value)
                before.append((table, hash_value, range_value, copy.deepcopy(current)))
        _state.active = True
        try:
            return original(self, transact_items)
        except Exception:
            for table, hash_value, range_value, item in reversed(before):
                restore(table, hash_value, range_value, item)
            raise
        finally:
            _state.active = False

    transact_write_items._moto_ext_patched = True  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
