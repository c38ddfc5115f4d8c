"""The stream stage of the exchange: every provincial change event is checked for provenance,
rules, duplicates and routing, and written to the national topics and the provinces' inbound
topics exactly once.

- the pure stage: ``process_batch`` (``streams.pipeline``, with ``rules``, ``routing``,
  ``validation``) turns a batch of ``Inbound`` messages into a ``BatchResult``;
- the worker around it: ``run`` (``streams.worker``) runs the loop (``streams.runner``), which
  reads the state through ``streams.changes``, writes in the commit order (``streams.commit``),
  hands partitions over exactly once (``streams.handover``), keeps its state in a
  ``StateStore`` backed by changelog topics (``streams.state``), the table of who owns which
  entity (``streams.ownership``), routes the cases that waited for a register to hold an
  entity they name (``streams.waiting``) and forgets old event ids (``streams.retention``);
- ``streams.subscribe``: the cases routed to one province (``routed_case``, ``format_line``),
  for its enforcement teams;
- ``streams.service``: the national registry service (the register by key, verification,
  batch lookups, downloads; faust web views), ``roadx worker service``;
- ``streams.cases``: the case workflows (receipts, answers, declines, deadlines; a faust app),
  ``roadx worker cases``; both faust apps run through ``streams.faust_run``;
- errors: ``StreamError`` and its tree (``streams.errors``).

Names are imported from their modules when first asked for, so importing ``streams`` (or
``streams.errors``) does not load the worker's libraries. A name that is also a module's
(``subscribe``, ``worker``) is not exported: the module would shadow it once imported.
"""

from __future__ import annotations

from schemas.exports import lazy_names


_WHERE = {
    "BatchResult": "pipeline", "Inbound": "pipeline", "Outbound": "pipeline", "StageContext": "pipeline",
    "process_batch": "pipeline",
    "run": "worker", "StreamRunner": "runner", "StateStore": "state",
    "routed_case": "subscribe", "format_line": "subscribe",
    "StreamError": "errors", "Rejection": "errors", "WorkerError": "errors", "StateError": "errors",
}

__all__ = sorted(_WHERE)
__getattr__ = lazy_names(__name__, _WHERE)
