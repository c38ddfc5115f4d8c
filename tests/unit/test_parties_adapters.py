"""The file adapters and a party's registers: a file of a register the party may not publish is
refused whole, before it is read, and the drop folder goes on."""

from __future__ import annotations

import pytest

from producers.errors import FileAdapterError
from producers.files.adapter import FileAdapter, FileAdapterOptions
from producers.files.watch import DropFolder
from schemas.settings import Settings


@pytest.fixture
def settings(tmp_path):
    return Settings(data_dir=tmp_path / "d", provinces=("44", "CJ", "66"))


def test_a_drop_folder_moves_aside_a_file_of_a_register_its_party_may_not_publish(settings, tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    path = drop / "vehicle_20240601.csv"
    path.write_text("plate,plate_color\n粤B12345,2\n", "utf-8")
    folder = DropFolder(settings, "CJ", drop, None, FileAdapterOptions())
    try:
        result = folder._load(path)
    finally:
        folder.close()
    assert result.status == "rejected" and "register_not_allowed" in result.reason and "vehicle" in result.reason
    assert result.moved_to == drop / "rejected" / path.name and not path.exists()
    assert "register_not_allowed" in (drop / "rejected" / f"{path.name}.reason").read_text("utf-8")
    assert not (settings.data_dir / "adapters").exists()  # no adapter was opened for it


@pytest.mark.parametrize("party, entity", [("CJ", "operator"), ("66", "ship")])
def test_an_adapter_for_a_register_its_party_may_not_publish_does_not_start(settings, tmp_path, party, entity):
    with pytest.raises(FileAdapterError, match=f"register_not_allowed: party {party} .* may not publish the {entity}"):
        FileAdapter(settings, party, entity) if entity == "operator" else \
            DropFolder(settings, party, tmp_path, entity, FileAdapterOptions())
