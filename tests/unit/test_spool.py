"""The SQLite outbox spool: durable appends, acknowledgement, checkpoint, bad paths."""

from __future__ import annotations

import sqlite3

import pytest

from producers.errors import SpoolError
from producers.spool import Spool, id_runs


def entries(n: int, start: int = 0):
    return [("prov.44.changes", f"k{i}".encode(), f"v{i}".encode()) for i in range(start, start + n)]


def test_appended_entries_stay_pending_after_reopen(tmp_path):
    path = tmp_path / "44.db"
    with Spool(path) as spool:
        assert spool.append(entries(5)) == 5
    with Spool(path) as spool:
        pending = spool.pending(10)
        assert [(e.topic, e.key, e.value) for e in pending] == entries(5)
        assert spool.depth() == 5


def test_acknowledged_entries_are_not_returned_again(tmp_path):
    with Spool(tmp_path / "44.db") as spool:
        spool.append(entries(6))
        first = spool.pending(10)
        assert spool.mark_acked([first[0].id, first[2].id]) == 2
        assert [e.value for e in spool.pending(10)] == [b"v1", b"v3", b"v4", b"v5"]
        assert spool.depth() == 4
    with Spool(tmp_path / "44.db") as spool:
        assert spool.depth() == 4


def test_pending_keeps_order_and_pages_after_an_id(tmp_path):
    with Spool(tmp_path / "44.db") as spool:
        spool.append(entries(3))
        spool.append(entries(3, start=3))
        page = spool.pending(4)
        assert [e.value for e in page] == [b"v0", b"v1", b"v2", b"v3"]
        assert [e.value for e in spool.pending(4, after_id=page[-1].id)] == [b"v4", b"v5"]


def test_acking_twice_counts_once(tmp_path):
    with Spool(tmp_path / "44.db") as spool:
        spool.append(entries(2))
        ids = [e.id for e in spool.pending(10)]
        assert spool.mark_acked(ids) == 2
        assert spool.mark_acked(ids) == 0
        assert spool.mark_acked([]) == 0


def test_acknowledged_entries_leave_the_file(tmp_path):
    path = tmp_path / "44.db"
    with Spool(path) as spool:
        spool.append(entries(4))
        spool.mark_acked([e.id for e in spool.pending(2)])
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM entries ORDER BY id").fetchall() == [(b"v2",), (b"v3",)]


OLDER_SPOOL = """
CREATE TABLE entries (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, key BLOB, value BLOB NOT NULL,
                      acked INTEGER NOT NULL DEFAULT 0);
CREATE INDEX entries_pending ON entries (id) WHERE acked = 0;
CREATE TABLE checkpoint (only INTEGER PRIMARY KEY CHECK (only = 1), value TEXT NOT NULL);
"""


def test_a_spool_an_older_version_wrote_opens_without_the_entries_it_marked_acknowledged(tmp_path):
    path = tmp_path / "44.db"
    with sqlite3.connect(path) as db:  # an older version marked rows acknowledged instead of deleting them
        db.executescript(OLDER_SPOOL)
        db.executemany("INSERT INTO entries (topic, key, value, acked) VALUES ('prov.44.changes', NULL, ?, ?)",
                       [(b"v0", 1), (b"v1", 1), (b"v2", 0), (b"v3", 0)])
        db.execute("INSERT INTO checkpoint (only, value) VALUES (1, 'c3')")
    with Spool(path) as spool:
        assert [e.value for e in spool.pending(10)] == [b"v2", b"v3"]
        assert spool.depth() == 2 and spool.checkpoint() == "c3"
        spool.append(entries(1))
        spool.mark_acked([e.id for e in spool.pending(1)])
        assert [e.value for e in spool.pending(10)] == [b"v3", b"v0"]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM entries WHERE acked = 1").fetchone() == (0,)


def test_append_entries_returns_the_stored_entries_with_their_ids(tmp_path):
    with Spool(tmp_path / "44.db") as spool:
        spool.append(entries(3))
        spool.mark_acked([e.id for e in spool.pending(3)])
        stored = spool.append_entries(entries(4, start=3), checkpoint="row-7")
        assert stored == spool.pending(10)
        assert [e.value for e in stored] == [b"v3", b"v4", b"v5", b"v6"]
        assert spool.append_entries([]) == [] and spool.checkpoint() == "row-7"


def test_first_pending_is_the_oldest_unacknowledged_id_after_a_point(tmp_path):
    with Spool(tmp_path / "44.db") as spool:
        assert spool.first_pending() is None
        ids = [e.id for e in spool.append_entries(entries(4))]
        spool.mark_acked(ids[:1])
        assert spool.first_pending() == ids[1]
        assert spool.first_pending(after_id=ids[2]) == ids[3]
        assert spool.first_pending(after_id=ids[3]) is None


def test_acknowledging_scattered_ids_removes_exactly_those(tmp_path):
    with Spool(tmp_path / "44.db") as spool:
        ids = [e.id for e in spool.append_entries(entries(8))]
        assert spool.mark_acked([ids[6], ids[0], ids[1], ids[2], ids[4], ids[0]]) == 5
        assert [e.value for e in spool.pending(10)] == [b"v3", b"v5", b"v7"]


@pytest.mark.parametrize("ids, runs", [
    ([], []),
    ([7], [(7, 7)]),
    ([5, 1, 2, 3, 5, 9], [(1, 3), (5, 5), (9, 9)]),
    ([4, 3, 2, 1], [(1, 4)]),
    ([1, 3, 5], [(1, 1), (3, 3), (5, 5)]),
])
def test_ids_group_into_sorted_runs_of_consecutive_ids(ids, runs):
    assert id_runs(ids) == runs


def test_checkpoint_is_stored_with_its_entries(tmp_path):
    path = tmp_path / "44.db"
    with Spool(path) as spool:
        assert spool.checkpoint() is None
        spool.append(entries(2), checkpoint="file-2024-06-01:row-2")
        spool.append(entries(1, start=2))  # no checkpoint: the previous one stays
    with Spool(path) as spool:
        assert spool.checkpoint() == "file-2024-06-01:row-2"
        assert spool.depth() == 3


def test_a_bad_entry_stores_neither_the_batch_nor_the_checkpoint(tmp_path):
    with Spool(tmp_path / "44.db") as spool:
        spool.append(entries(1), checkpoint="row-1")
        batch = entries(2, start=1) + [("prov.44.changes", b"k", None)]
        with pytest.raises(SpoolError, match="entry 2"):
            spool.append(batch, checkpoint="row-4")
        assert spool.checkpoint() == "row-1"
        assert spool.depth() == 1


def test_a_database_error_mid_batch_rolls_back_entries_and_checkpoint(tmp_path):
    path = tmp_path / "44.db"
    with Spool(path) as spool:
        spool.append(entries(1), checkpoint="row-1")
    with sqlite3.connect(path) as db:  # make the third row of the next batch fail inside SQLite
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON entries WHEN NEW.value = X'626f6f6d' "
                   "BEGIN SELECT RAISE(ABORT, 'refused'); END")
    with Spool(path) as spool:
        batch = entries(2, start=1) + [("prov.44.changes", b"k", b"boom")]
        with pytest.raises(SpoolError, match="refused"):
            spool.append(batch, checkpoint="row-4")
        assert (spool.checkpoint(), spool.depth()) == ("row-1", 1)


def test_a_directory_in_place_of_the_file_gives_a_spool_error(tmp_path):
    (tmp_path / "44.db").mkdir()
    with pytest.raises(SpoolError, match="44.db"):
        Spool(tmp_path / "44.db")


def test_a_parent_that_is_a_file_gives_a_spool_error(tmp_path):
    (tmp_path / "spool").write_text("not a directory")
    with pytest.raises(SpoolError, match="cannot open spool"):
        Spool(tmp_path / "spool" / "44.db")


def test_a_file_that_is_not_a_database_gives_a_spool_error(tmp_path):
    (tmp_path / "44.db").write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(SpoolError, match="cannot open spool"):
        Spool(tmp_path / "44.db")


STATE = "CREATE TABLE IF NOT EXISTS owner_state (name TEXT PRIMARY KEY, value TEXT NOT NULL);"
SET_STATE = "INSERT INTO owner_state (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value"


def test_owner_state_is_written_with_the_entries_in_one_transaction(tmp_path):
    path = tmp_path / "44.db"
    with Spool(path) as spool:
        spool.add_tables(STATE)
        spool.append(entries(2), checkpoint="row-2", statements=[(SET_STATE, [("next_seq", "3"), ("table", "t")])])
        spool.write([(SET_STATE, [("next_seq", "4")])])
    with Spool(path) as spool:
        spool.add_tables(STATE)  # idempotent
        assert sorted(spool.select("SELECT name, value FROM owner_state")) == [("next_seq", "4"), ("table", "t")]
        assert spool.select("SELECT value FROM owner_state WHERE name = ?", ("table",)) == [("t",)]
        assert (spool.checkpoint(), spool.depth()) == ("row-2", 2)


def test_a_failing_owner_statement_rolls_back_entries_and_checkpoint(tmp_path):
    with Spool(tmp_path / "44.db") as spool:
        spool.add_tables(STATE)
        spool.append(entries(1), checkpoint="row-1")
        with pytest.raises(SpoolError, match="cannot write to spool"):
            spool.append(entries(2, start=1), checkpoint="row-3",
                         statements=[(SET_STATE, [("next_seq", "4")]), ("INSERT INTO no_such_table VALUES (?)", [(1,)])])
        assert (spool.checkpoint(), spool.depth()) == ("row-1", 1)
        assert spool.select("SELECT count(*) FROM owner_state") == [(0,)]


def test_bad_owner_tables_or_queries_give_a_spool_error(tmp_path):
    with Spool(tmp_path / "44.db") as spool:
        with pytest.raises(SpoolError, match="cannot create state tables"):
            spool.add_tables("CREATE TABLE broken (")
        with pytest.raises(SpoolError, match="cannot read spool"):
            spool.select("SELECT * FROM no_such_table")
