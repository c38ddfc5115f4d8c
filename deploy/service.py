"""The information service (``streams.service``) seen from the top floor: what it is handed
(the analytical store for downloads and the catalog's counts: ``sinks.downloads``, through
the one way commands reach the store, ``sinks.store_client``, the running stack's served
store when there is one), and ``ask_verification``, how ``roadx verify`` asks it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Mapping

from schemas.settings import Settings
from sinks.downloads import PARAMETERS, Download, parse_download_request, register_counts, stream_download
from sinks.errors import DownloadError, SinkError
from sinks.store_client import store_client
from streams.errors import BadQuestion

from schemas.licences import Verdict

from .errors import DeployError, StackError
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


def ask_verification(service_url: str, token: str, licence_no: str, timeout: float = 10,
                     qr: str | None = None) -> Verdict:
    """The service's verdict on ``licence_no``, or on the licence a scanned ``qr`` payload names with
    its seal checked (``service_url`` ends in ``/v1/``); a number or payload the service refuses as
    ill-formed, or a scanned licence it does not know, is answered unknown with the reason."""
    if qr is not None:
        url, data = f"{service_url.rstrip('/')}/licences/verification", json.dumps({"qr": qr}).encode("utf-8")
    else:
        url = f"{service_url.rstrip('/')}/licences/{urllib.parse.quote(licence_no.strip(), safe='')}/verification"
        data = None
    request = urllib.request.Request(url, data=data, headers={"Authorization": f"Bearer {token}",
                                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return Verdict(**json.loads(answer.read()))
    except urllib.error.HTTPError as exc:
        body = _refusal_body(exc)
        if exc.code == 400 or (exc.code == 404 and qr is not None):
            return Verdict(licence_no, "unknown", reason=body.get("error", str(exc)))
        raise DeployError(f"the service at {service_url} answered {exc.code}: {body.get('error', exc.reason)}") from exc
    except (urllib.error.URLError, OSError, ValueError, TypeError) as exc:
        raise DeployError(f"cannot ask the service at {service_url}: {exc}") from exc


def _refusal_body(exc: urllib.error.HTTPError) -> dict[str, Any]:
    try:
        body = json.loads(exc.read())
    except (ValueError, OSError):
        return {}
    return body if isinstance(body, dict) else {}
