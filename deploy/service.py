"""What the information service (``streams.service``) is handed from the top floor: the
analytical store for downloads and the catalog's counts (``sinks.downloads``, through the
one way commands reach the store: ``sinks.store_client``, the running stack's served store
when there is one).
"""

from __future__ import annotations

from typing import Any, Mapping

from schemas.settings import Settings
from sinks.downloads import PARAMETERS, Download, parse_download_request, register_counts, stream_download
from sinks.errors import DownloadError, SinkError
from sinks.store_client import store_client
from streams.errors import BadQuestion

from .errors import StackError
from .stack import served_store


class StoreDownloads:
    """``streams.service.api.StoreAccess`` on the exchange's store."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def download(self, params: Mapping[str, str]) -> Download:
        request = parse_download_request(params, self.settings.provinces)
        client = self._client()
        download = stream_download(client, self.settings.clickhouse_database, request)
        return Download(download.content_type, download.filename, _closing(download.chunks, client))

    def counts(self) -> Mapping[str, Mapping[str, tuple[int, Any]]]:
        client = self._client()
        try:
            return register_counts(client, self.settings.clickhouse_database)
        finally:
            client.close()

    def refusal(self, exc: Exception) -> BadQuestion | None:
        """The answer to a caller for a store error: 400 for a bad request, 503 when the store fails."""
        if isinstance(exc, DownloadError):
            rule = f"invalid_{exc.parameter}" if exc.parameter in PARAMETERS else "unknown_parameter"
            return BadQuestion(400, rule, str(exc))
        if isinstance(exc, (SinkError, StackError)):
            return BadQuestion(503, "store_unavailable", f"the analytical store cannot answer now: {exc}")
        return None

    def _client(self) -> Any:
        return store_client(self.settings, served_store(self.settings))


def _closing(chunks: Any, client: Any) -> Any:
    try:
        yield from chunks
    finally:
        chunks.close()
        client.close()
