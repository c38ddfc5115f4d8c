"""producers and its three adapter sub-packages name their public names in ``__all__``; each resolves,
and importing one module of a sub-package loads neither the others nor Kafka."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PACKAGES = ["producers", "producers.files", "producers.database", "producers.synthetic"]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_resolves(package):
    module = importlib.import_module(package)
    assert module.__doc__ and module.__all__ == sorted(module.__all__)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    with pytest.raises(AttributeError):
        getattr(module, "no_such_name")


def test_checking_a_file_row_loads_no_kafka_client():
    code = "import sys, producers.files.rows, producers.errors; print('confluent_kafka' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
