"""The data-quality rules, declared as data.

Each ``Rule`` has a code, the entity it applies to, the dimension the ministry scores
(completeness 完整性 / conformity 规范性 / relational 关联性), a severity (an ``error``
rejects the event, a ``warning`` lets it pass) and a message. ``evaluate`` runs every rule
of an event's entity over its record and returns every finding, so a province sees all of
a record's faults at once. Relational rules read ``Facts``: what the registry and the
entity's last accepted version say. A rule about a referenced entity that is not registered
(``refers_to``) depends on what the hub has read so far: its finding carries the missing
entity's key (``Finding.ref_key``) and stays provisional until the reference grace period
has passed without that entity arriving (the store decides, ``sinks.report``).

Every register's rules are made from its declaration (``schemas.registers``: the rules each
field and the record name, with their severity) by ``streams.declared_rules``; the parts rules
are made of are ``streams.checks``.
"""


from __future__ import annotations

from .checks import (COMPLETENESS, CONFORMITY, ERROR, RELATIONAL, WARNING, Check, Facts, Finding, Record, Rule,
                     reference_key)
from .declared_rules import declared_rules

__all__ = ["COMPLETENESS", "CONFORMITY", "Check", "ERROR", "Facts", "Finding", "RELATIONAL", "RULES", "RULES_BY_ENTITY",
           "Record", "Rule", "WARNING", "evaluate", "reference_key"]


def evaluate(entity_type: str, record: Record, facts: Facts) -> list[Finding]:
    """Every finding of the rules of ``entity_type`` on ``record``, errors first."""
    findings = []
    for rule in RULES_BY_ENTITY.get(entity_type, ()):
        detail = rule.check(record, facts)
        if detail is not None:
            findings.append(Finding(rule, detail, rule.reference(record)))
    findings.sort(key=lambda f: f.rule.severity != ERROR)
    return findings


RULES: list[Rule] = declared_rules()
RULES_BY_ENTITY: dict[str, tuple[Rule, ...]] = {
    e: tuple(r for r in RULES if r.entity == e) for e in dict.fromkeys(r.entity for r in RULES)
}
