"""A package's public names, each imported from its module when first asked for (PEP 562).

A package's ``__init__`` says where each public name lives; importing one module of the
package then loads none of the others (nor their libraries)::

    __all__ = sorted(_HOMES)
    __getattr__ = lazy_names(__name__, _HOMES)
"""

from __future__ import annotations

from importlib import import_module
from typing import Any, Callable, Iterable, Mapping


def lazy_names(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``name`` from ``package.<homes[name]>``."""
    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(f".{home}", package), name)
    return __getattr__


def lazy_modules(package: str, names: Iterable[str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` whose public names are its sub-modules."""
    known = frozenset(names)

    def __getattr__(name: str) -> Any:
        if name not in known:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return import_module(f".{name}", package)
    return __getattr__
