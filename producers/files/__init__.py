"""The file adapter: a province's daily register files (CSV or XLSX) → signed change events.

``FileAdapter`` loads one file (``adapter``): it is read (``tabular``), its columns named
(``headers``), each row checked and its identifiers written in canonical form (``rows``,
``daily_file``), compared with the previous snapshot (``snapshot``) and published through the
spool. ``DropFolder`` (``watch``) loads every file that settles in a folder.
"""

from __future__ import annotations

from schemas.exports import lazy_names


__all__ = ["DropFolder", "FileAdapter", "FileAdapterOptions", "FileResult", "Progress", "ReadLimits", "load_mapping"]
_HOMES = {  # public name -> the module that defines it
    "DropFolder": "watch", "FileAdapter": "adapter", "FileAdapterOptions": "adapter", "FileResult": "adapter",
    "Progress": "adapter", "ReadLimits": "tabular", "load_mapping": "headers",
}
__getattr__ = lazy_names(__name__, _HOMES)
