"""Each package names its public names in ``__all__`` (``schemas.exports``), and every one of them resolves."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest


PACKAGES = ["streams", "sinks", "producers", "producers.files", "producers.database", "producers.synthetic",
            "deploy.bench", "deploy.chaos", "deploy.commands"]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_resolves_to_what_its_module_defines(package):
    module = importlib.import_module(package)
    assert module.__doc__ and module.__all__ == sorted(module.__all__)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    with pytest.raises(AttributeError):
        getattr(module, "no_such_name")
    if all(isinstance(getattr(module, name), type(module)) for name in module.__all__):
        return  # a package whose public names are its modules
    modules = {path.stem for path in Path(module.__file__).parent.glob("*.py")}
    assert not modules & set(module.__all__), "an exported name a submodule would shadow once imported"


@pytest.mark.parametrize("package, heavy", [("streams", "rocksdict"), ("sinks", "clickhouse_connect")])
def test_importing_a_package_or_its_errors_loads_none_of_its_libraries(package, heavy):
    code = f"import sys, {package}, {package}.errors; print({heavy!r} in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
