"""Cross-province cases worked to the end (业务协同): each routed case's workflow at its target
province — receipts, progress, answers, declines and deadlines (``streams.cases.workflow``).
"""
