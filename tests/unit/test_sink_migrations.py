"""Migration ordering (pure part); applying them runs in tests/integration/test_sink_store.py."""

from __future__ import annotations

import pytest

from sinks.errors import StoreError
from sinks.migrations import MIGRATIONS, Migration, pending


def test_shipped_migrations_are_in_order_and_all_pending_on_an_empty_store():
    assert [m.version for m in pending(MIGRATIONS, set())] == [m.version for m in MIGRATIONS]


def test_applied_versions_are_not_pending_again():
    assert pending(MIGRATIONS, {m.version for m in MIGRATIONS}) == []
    assert [m.version for m in pending(MIGRATIONS, {1, 2})] == [m.version for m in MIGRATIONS[2:]]


@pytest.mark.parametrize("versions", [(1, 1), (2, 1), (0,)])
def test_out_of_order_versions_are_refused(versions):
    with pytest.raises(StoreError, match="out of order"):
        pending([Migration(v, f"m{v}", ()) for v in versions], set())


def test_every_statement_is_idempotent_or_guarded():
    for migration in MIGRATIONS:
        for statement in migration.statements:
            head = " ".join(statement.split()[:8]).upper()
            assert ("IF NOT EXISTS" in head or "OR REPLACE" in head
                    or ("INSERT INTO" in head and "= 0" in statement)), statement
