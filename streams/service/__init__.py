"""The national registry service (信息服务): the register of every party's entities by key,
online licence verification and downloads, answered to the parties over HTTP.

- ``streams.service.register``: what one change of ``national.changes`` does to the register
  (entries, lookup indexes, stale changes left out) — pure;
- ``streams.service.replica``: each worker's copy of the register, read from ``national.changes``;
- ``streams.service.questions`` / ``answers``: identifiers checked under the stream stage's rule
  names, and answers masked for every party but the entity's own;
- ``streams.service.api`` / ``openapi``: the faust web views, credentials and rate limits;
- ``streams.service.app``: ``run``, the process.
"""
