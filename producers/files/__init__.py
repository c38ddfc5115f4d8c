"""The file adapter: a province's daily register files (CSV or XLSX) → signed change events.

``FileAdapter`` loads one file (``adapter``): it is read (``tabular``), its columns named
(``headers``), each row checked and its identifiers written in canonical form (``rows``,
``daily_file``), compared with the previous snapshot (``snapshot``) and published through the
spool. ``DropFolder`` (``watch``) loads every file that settles in a folder.
"""

from __future__ import annotations

import importlib

__all__ = ["DropFolder", "FileAdapter", "FileAdapterOptions", "FileResult", "Progress", "ReadLimits", "load_mapping"]
_HOMES = {  # public name -> the module that defines it
    "DropFolder": "watch", "FileAdapter": "adapter", "FileAdapterOptions": "adapter", "FileResult": "adapter",
    "Progress": "adapter", "ReadLimits": "tabular", "load_mapping": "headers",
}


def __getattr__(name: str) -> object:
    """Each public name is imported from its module when first asked for, so importing one
    module of the package loads none of the others (nor their libraries)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{home}", __name__), name)
