"""The file adapter: a province's daily register files (CSV or XLSX) → signed change events.

``FileAdapter`` loads one file (``adapter``): it is read (``tabular``), its columns named
(``headers``), each row checked and its identifiers written in canonical form (``rows``,
``daily_file``), compared with the previous snapshot (``snapshot``) and published through the
spool. ``DropFolder`` (``watch``) loads every file that settles in a folder.
"""

from .adapter import FileAdapter, FileAdapterOptions, FileResult, Progress
from .headers import load_mapping
from .tabular import ReadLimits
from .watch import DropFolder

__all__ = ["DropFolder", "FileAdapter", "FileAdapterOptions", "FileResult", "Progress", "ReadLimits", "load_mapping"]
