"""Settings: resolved once from environment and flags, unknown keys rejected."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.errors import KeyStoreError, SettingsError
from schemas.settings import resolve, to_environ


def test_defaults_are_the_embedded_stack():
    settings = resolve({})
    assert settings.embedded and settings.data_dir == Path(".roadx") and len(settings.provinces) == 31


def test_environment_then_flags_take_precedence():
    settings = resolve({"ROADX_PARTITIONS": "4", "ROADX_DATA_DIR": "/tmp/a"}, data_dir="/tmp/b")
    assert settings.partitions == 4 and settings.data_dir == Path("/tmp/b")


def test_unknown_variable_is_rejected_with_the_known_ones_listed():
    with pytest.raises(SettingsError, match="ROADX_PARTITONS.*ROADX_PARTITIONS"):
        resolve({"ROADX_PARTITONS": "4"})


@pytest.mark.parametrize("env, message", [
    ({"ROADX_PARTITIONS": "four"}, "ROADX_PARTITIONS='four'"),
    ({"ROADX_PARTITIONS": "0"}, "at least 1"),
    ({"ROADX_PROVINCES": "44,99"}, "ROADX_PROVINCES: unknown party code\\(s\\) 99"),
    ({"ROADX_PROVINCES": " , "}, "empty list"),
    ({"ROADX_REFERENCE_GRACE_SECONDS": "-1"}, "ROADX_REFERENCE_GRACE_SECONDS must be 0 or more"),
    ({"ROADX_REFERENCE_GRACE_SECONDS": "an hour"}, "ROADX_REFERENCE_GRACE_SECONDS='an hour'"),
])
def test_malformed_values_say_which_setting(env, message):
    with pytest.raises(SettingsError, match=message):
        resolve(env)


def test_children_resolve_the_same_settings_from_the_environment(tmp_path):
    settings = resolve({}, data_dir=str(tmp_path), provinces=("11", "44"), topic_prefix="t1.")
    assert resolve(to_environ(settings)) == settings


def test_party_keys_are_stable_distinct_and_kept_on_the_party_side(tmp_path):
    settings = resolve({}, data_dir=str(tmp_path / "hub"))
    again = resolve({}, data_dir=str(tmp_path / "hub"))
    assert settings.province_key("44") == again.province_key("44") != settings.province_key("11")
    assert settings.party_keys_dir == tmp_path / "hub-parties"
    key = settings.party_key("44")
    assert (settings.party_keys_dir / "44" / "keys" / key.key_id / "sm2.key").stat().st_mode & 0o077 == 0
    # The hub registered what it needs, and nothing of the party is derived from what it holds.
    assert settings.hub_keys().event_secrets("44", key.not_before) == (key.event_secret,)
    assert not (tmp_path / "hub" / "secrets").exists()


def test_without_auto_keys_a_party_with_no_keys_is_told_how_to_make_them(tmp_path):
    settings = resolve({"ROADX_AUTO_KEYS": "false"}, data_dir=str(tmp_path / "hub"))
    with pytest.raises(KeyStoreError, match="roadx keys init --party 44"):
        settings.province_key("44")


def test_a_missing_master_key_file_is_an_error_not_a_new_key(tmp_path):
    settings = resolve({"ROADX_MASTER_KEY_FILE": str(tmp_path / "nope.key")})
    with pytest.raises(SettingsError, match="does not exist"):
        settings.master_key()


def test_the_uscc_allow_list_is_read_from_its_file_once(tmp_path):
    path = tmp_path / "pilot-codes.txt"
    path.write_text("# Fujian pilot codes\n91350100M000100Y44\n\n91350100M000100Y45  # second\n", "utf-8")
    settings = resolve({"ROADX_USCC_ALLOW_FILE": str(path)})
    assert settings.uscc_allow() == {"91350100M000100Y44", "91350100M000100Y45"}
    path.unlink()
    assert settings.uscc_allow() == {"91350100M000100Y44", "91350100M000100Y45"}
    assert resolve({}).uscc_allow() == frozenset()


def test_children_resolve_the_same_uscc_allow_list(tmp_path):
    path = tmp_path / "pilot-codes.txt"
    path.write_text("91350100M000100Y44\n", "utf-8")
    settings = resolve({"ROADX_USCC_ALLOW_FILE": str(path)}, data_dir=str(tmp_path))
    child = resolve(to_environ(settings))
    assert child == settings and child.uscc_allow() == {"91350100M000100Y44"}


@pytest.mark.parametrize("content, message", [("91350100M000100Y4\n", "line 1: '91350100M000100Y4'"),
                                              ("91350100M000100Y44\n91350100m000100y44\n", "line 2")])
def test_a_malformed_uscc_allow_list_fails_at_resolve_naming_the_line(tmp_path, content, message):
    path = tmp_path / "pilot-codes.txt"
    path.write_text(content, "utf-8")
    with pytest.raises(SettingsError, match=message):
        resolve({"ROADX_USCC_ALLOW_FILE": str(path)})


def test_a_missing_uscc_allow_list_file_fails_at_resolve(tmp_path):
    with pytest.raises(SettingsError, match="cannot read ROADX_USCC_ALLOW_FILE .*nope.txt"):
        resolve({"ROADX_USCC_ALLOW_FILE": str(tmp_path / "nope.txt")})
