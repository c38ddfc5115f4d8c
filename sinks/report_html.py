"""``ReportData`` → one self-contained HTML page (inline CSS and SVG, no external assets).

Pure: no store, no clock. Every label is bilingual (中文 / English). Each province has a
``<section class="province" data-province="<code>">`` with its tables and trend charts;
the cross-province case flows are a province × province heat map; the information service's
use per party is one table (``<section class="service-use">``), or a line saying there were no
requests that month; so is the timeliness of cross-province cases per target province
(``<section class="case-timeliness">``). Every declared register, road and water, has its events
this month and current records per party (``<section class="registers">``, one table per
family), and the parties that are not provinces — the navigation administrations, the Corps —
are listed by name with what they sent (``<section class="parties">``).
"""

from __future__ import annotations

import datetime as dt
from html import escape

from schemas.catalog import REGISTER_NAMES
from schemas.identifiers import PROVINCES
from schemas.parties import PROVINCE, ROAD_REGISTERS, default_parties
from schemas.registers import declarations

from .report import DIMENSIONS, OUTCOMES, ProvinceMonth, ReportData

DIMENSION_LABELS = {"completeness": "完整性 completeness", "conformity": "规范性 conformity",
                    "relational": "关联性 relational"}
DIMENSION_COLOURS = {"completeness": "#1f77b4", "conformity": "#2ca02c", "relational": "#d62728"}
ENTITY_LABELS = {entity: f"{zh} {en}" for entity, (zh, en) in REGISTER_NAMES.items()}
OUTCOME_LABELS = {"found": "查到 found", "unknown": "未查到 unknown", "invalid": "无效 invalid",
                  "denied": "拒绝 denied", "limited": "限流 limited", "error": "出错 error",
                  "routed": "转办 routed"}
_CSS = """
body{font-family:"Noto Sans CJK SC","Microsoft YaHei",Arial,sans-serif;margin:24px;color:#222}
h1{font-size:22px}h2{font-size:18px;border-bottom:2px solid #444;padding-bottom:4px;margin-top:32px}
h3{font-size:16px;margin:4px 0 8px}
table{border-collapse:collapse;font-size:13px;margin:4px 0 12px}
th,td{border:1px solid #bbb;padding:3px 7px}th{background:#eee}td.n{text-align:right}
.pair{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
section.province{border:1px solid #ddd;border-radius:6px;padding:10px 14px;margin:14px 0}
.muted{color:#777;font-size:12px}
"""


_PARTIES = default_parties()


def province_label(code: str) -> str:
    party = _PARTIES.get(code)  # a party that is not a province: the Corps, a navigation administration
    name = PROVINCES.get(code, (party.name if party else "",))[0]
    english = party.name_en if party else ""
    return " ".join(part for part in (code, name, english) if part)


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def duration(ms: float | None) -> str:
    """A lag in the unit that reads best (ms, s, min, h, d)."""
    if ms is None:
        return "—"
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if abs(ms) >= size:
            return f"{ms / size:.1f} {unit}"
    return f"{ms:.0f} ms"


def month_label(month: dt.date) -> str:
    return month.strftime("%Y-%m")


def _table(headers: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td{' class=n' if i >= numeric_from else ''}>{escape(c)}</td>" for i, c in enumerate(r))
        + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# -- charts -------------------------------------------------------------------------------------

def bar_chart(items: list[tuple[str, int]], title: str, width: int = 420) -> str:
    """Horizontal bars, one per (label, value)."""
    bar_h, left = 16, 150
    height = 24 + bar_h * max(len(items), 1) + 8
    top = max((v for _l, v in items), default=0) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f"<title>{escape(title)}</title>",
             f'<text x="0" y="14" font-size="12" font-weight="bold">{escape(title)}</text>']
    for i, (label, value) in enumerate(items):
        y = 24 + i * bar_h
        w = (width - left - 60) * value / top
        parts.append(f'<text x="{left - 4}" y="{y + 12}" font-size="11" text-anchor="end">{escape(label)}</text>')
        parts.append(f'<rect x="{left}" y="{y + 2}" width="{w:.1f}" height="{bar_h - 4}" fill="#4c78a8"/>')
        parts.append(f'<text x="{left + w + 4:.1f}" y="{y + 12}" font-size="11">{value:,}</text>')
    parts.append("</svg>")
    return "".join(parts)


def trend_chart(months: list[dt.date], volumes: list[int], scores: dict[str, list[float | None]],
                title: str, width: int = 360, height: int = 170) -> str:
    """Monthly volumes as bars (left axis) and the three scores as lines (right axis, %)."""
    left, right, top, bottom = 40, 44, 22, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    step = plot_w / max(len(months), 1)
    vmax = max(volumes, default=0) or 1
    known = [s for series in scores.values() for s in series if s is not None]
    floor = min([0.9, *known])
    floor = max(0.0, int(floor * 20) / 20)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f"<title>{escape(title)}</title>",
             f'<text x="0" y="12" font-size="12" font-weight="bold">{escape(title)}</text>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#888"/>',
             f'<text x="{left - 4}" y="{top + 8}" font-size="10" text-anchor="end">{vmax:,}</text>',
             f'<text x="{left + plot_w + 4}" y="{top + 8}" font-size="10">100%</text>',
             f'<text x="{left + plot_w + 4}" y="{top + plot_h}" font-size="10">{floor * 100:.0f}%</text>']
    for i, (month, volume) in enumerate(zip(months, volumes)):
        x = left + i * step
        h = plot_h * volume / vmax
        parts.append(f'<rect x="{x + step * 0.2:.1f}" y="{top + plot_h - h:.1f}" width="{step * 0.6:.1f}" '
                     f'height="{h:.1f}" fill="#c6d6ea"><title>{month_label(month)}: {volume:,}</title></rect>')
        parts.append(f'<text x="{x + step / 2:.1f}" y="{height - 12}" font-size="9" text-anchor="middle">'
                     f'{month.strftime("%y-%m")}</text>')
    for dimension, series in scores.items():
        points = [(left + (i + 0.5) * step, top + plot_h * (1 - (s - floor) / ((1 - floor) or 1)))
                  for i, s in enumerate(series) if s is not None]
        colour = DIMENSION_COLOURS.get(dimension, "#555")
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>' for x, y in points]
    legend_x = left
    for dimension in scores:
        parts.append(f'<rect x="{legend_x}" y="{height - 8}" width="8" height="8" '
                     f'fill="{DIMENSION_COLOURS.get(dimension, "#555")}"/>')
        parts.append(f'<text x="{legend_x + 11}" y="{height - 1}" font-size="9">{escape(dimension)}</text>')
        legend_x += 90
    parts.append("</svg>")
    return "".join(parts)


def heat_map(provinces: list[str], flows: dict[tuple[str, str], int], title: str) -> str:
    """Source (rows) × target (columns) case counts, darker for more."""
    cell, left, top = 30, 120, 70
    n = len(provinces)
    width, height = left + cell * n + 10, top + cell * n + 10
    top_count = max(flows.values(), default=0) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f"<title>{escape(title)}</title>",
             f'<text x="0" y="14" font-size="12" font-weight="bold">{escape(title)}</text>',
             f'<text x="{left}" y="32" font-size="10">→ 目标省份 target province</text>']
    for i, code in enumerate(provinces):
        name = PROVINCES.get(code, (_PARTIES[code].name if code in _PARTIES else "",))[0]
        parts.append(f'<text x="{left - 4}" y="{top + i * cell + cell / 2 + 4}" font-size="10" '
                     f'text-anchor="end">{escape(code)} {escape(name)}</text>')
        parts.append(f'<text x="{left + i * cell + cell / 2}" y="{top - 6}" font-size="10" '
                     f'text-anchor="middle">{escape(code)}</text>')
    for i, source in enumerate(provinces):
        for j, target in enumerate(provinces):
            count = flows.get((source, target), 0)
            shade = 0 if not count else 0.15 + 0.85 * count / top_count
            fill = f"rgba(200,30,30,{shade:.2f})" if count else "#f6f6f6"
            x, y = left + j * cell, top + i * cell
            parts.append(f'<rect x="{x}" y="{y}" width="{cell - 1}" height="{cell - 1}" fill="{fill}">'
                         f"<title>{escape(source)} → {escape(target)}: {count}</title></rect>")
            if count:
                colour = "#fff" if shade > 0.55 else "#000"
                parts.append(f'<text x="{x + cell / 2 - 0.5}" y="{y + cell / 2 + 4}" font-size="10" '
                             f'text-anchor="middle" fill="{colour}">{count}</text>')
    parts.append("</svg>")
    return "".join(parts)


# -- the page -------------------------------------------------------------------------------------

def render_html(data: ReportData) -> str:
    month = month_label(data.month)
    previous = data.months[-2] if len(data.months) > 1 else None
    summary_rows = []
    for code in data.provinces:
        now = data.at(code)
        before = data.at(code, previous) if previous else ProvinceMonth()
        change = "—" if not before.events else f"{(now.events - before.events) / before.events * 100:+.1f}%"
        summary_rows.append([province_label(code), f"{now.events:,}", change,
                             *[percent(now.score(d)) for d in DIMENSIONS], f"{now.rejected:,}",
                             duration(now.lag_p50_ms), duration(now.lag_p99_ms)])
    summary = _table(["省份 province", "事件 events", "环比 vs previous month",
                      *[DIMENSION_LABELS[d] for d in DIMENSIONS], "拒收 rejected",
                      "时延 lag p50", "时延 lag p99"], summary_rows)
    volumes = bar_chart([(province_label(p), data.at(p).events) for p in data.provinces],
                        f"{month} 各省事件量 events per province")
    sections = "".join(_province_section(data, code) for code in data.provinces)
    flow_rows = [[province_label(s), province_label(t), f"{n:,}"]
                 for (s, t), n in sorted(data.flows.items(), key=lambda kv: -kv[1])]
    flows = (heat_map(data.provinces, data.flows, f"{month} 跨省案件流转 cross-province case flows")
             + _table(["来源 source", "目标 target", "案件 cases"], flow_rows, numeric_from=2))
    sources = "; ".join(data.sources)
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>道路运政数据交换月报 Road-transport data exchange monthly report {month}</title>
<style>{_CSS}</style></head><body>
<h1>全国道路运政数据交换月报 National road-transport data exchange — monthly report {month}</h1>
<p class="muted">生成时间 generated {escape(data.generated_at.strftime("%Y-%m-%d %H:%M UTC"))};
月份按源系统提交时间 months follow the source commit time; 数据来源 sources: {escape(sources)}</p>
<h2>总览 Overview</h2>
<div class="pair">{summary}{volumes}</div>
<p class="muted">得分 score = 1 − 该维度有确定问题的事件数 events with a final finding in the dimension
÷ (接收 accepted + 拒收 rejected); 引用的主体在宽限期内到达则撤销 a finding that a referenced entity is
unknown is withdrawn when that entity arrived within the grace period, and not counted while the period
runs (撤销 withdrawn {sum(s.withdrawn for (_p, m), s in data.stats.items() if m == data.month):,},
待定 provisional {sum(s.provisional for (_p, m), s in data.stats.items() if m == data.month):,});
时延 lag = 入库时间 stored − 源提交时间 source commit.</p>
<h2>各省 Provinces</h2>
{sections}
<h2>跨省案件流转 Cross-province case flows</h2>
<div class="pair">{flows}</div>
{_timeliness_section(data)}
{_service_section(data)}
{_registers_section(data)}
{_parties_section(data)}
</body></html>
"""


def _province_section(data: ReportData, code: str) -> str:
    now = data.at(code)
    series = [data.at(code, m) for m in data.months]
    chart = trend_chart(data.months, [s.events for s in series],
                        {d: [s.score(d) for s in series] for d in DIMENSIONS},
                        "趋势 trend: 事件 events, 得分 scores")
    trend = _table(["月份 month", "事件 events", *[DIMENSION_LABELS[d] for d in DIMENSIONS], "拒收 rejected"],
                   [[month_label(m), f"{s.events:,}", *[percent(s.score(d)) for d in DIMENSIONS], f"{s.rejected:,}"]
                    for m, s in zip(data.months, series)])
    entities = _table(["实体 entity", "事件 events"],
                      [[ENTITY_LABELS.get(e, e), f"{n:,}"] for e, n in sorted(data.by_entity.get(code, {}).items())])
    rules = _table(["规则 rule", "拒收 rejected"],
                   [[r, f"{n:,}"] for r, n in sorted(data.rejected_by_rule.get(code, {}).items(), key=lambda kv: -kv[1])])
    letters = _table(["规则 rule", "死信 dead letters"],
                     [[r, f"{n:,}"] for r, n in sorted(data.dead_letters.get(code, {}).items(), key=lambda kv: -kv[1])])
    sent = sum(n for (s, t), n in data.flows.items() if s == code)
    received = sum(n for (s, t), n in data.flows.items() if t == code)
    empty = "" if now.events or now.rejected else '<p class="muted">本月无数据 no data this month</p>'
    return f"""<section class="province" data-province="{escape(code)}">
<h3>{escape(province_label(code))}</h3>{empty}
<p>事件 events {now.events:,} · 拒收 rejected {now.rejected:,} · 时延 lag p50 {duration(now.lag_p50_ms)},
p99 {duration(now.lag_p99_ms)} · 跨省案件 cases sent {sent:,}, received {received:,}</p>
<div class="pair"><div><h4>按实体 by entity</h4>{entities}</div><div><h4>趋势 trend</h4>{trend}</div>{chart}</div>
<div class="pair"><div><h4>按规则拒收 rejected by rule</h4>{rules}</div>
<div><h4>死信 dead letters (按到达月份 by arrival month)</h4>{letters}</div></div>
</section>
"""


def _service_section(data: ReportData) -> str:
    """The information service's use per party in the report's month."""
    if data.service_use:
        rows = [[province_label(party) if party else "未识别 unidentified", f"{use.requests:,}",
                 *[f"{use.by_outcome.get(o, 0):,}" for o in OUTCOMES], f"{use.endpoints:,}",
                 duration(use.latency_p50_ms), duration(use.latency_p99_ms)]
                for party, use in sorted(data.service_use.items())]
        body = _table(["调用方 party", "请求 requests", *[OUTCOME_LABELS.get(o, o) for o in OUTCOMES],
                       "接口 endpoints", "时延 latency p50", "时延 latency p99"], rows)
    else:
        body = '<p class="muted">本月无信息服务请求 no service requests this month</p>'
    return f"""<section class="service-use">
<h2>信息服务使用 Service use</h2>
{body}
</section>"""


def _timeliness_section(data: ReportData) -> str:
    """Per target province: cases routed in the report's month, on time or not, open and overdue; alerts."""
    if data.timeliness:
        rows = [[province_label(target), f"{t.routed:,}", f"{t.received_on_time:,}", f"{t.answered_on_time:,}",
                 duration(t.median_answer_ms), f"{t.open:,}", f"{t.overdue:,}",
                 f"{t.alerts.get('receipt', 0):,}", f"{t.alerts.get('answer', 0):,}"]
                for target, t in sorted(data.timeliness.items())]
        body = _table(["目标省份 target", "转办 routed", "按时签收 received on time", "按时办结 answered on time",
                       "办结用时中位数 median time to answer", "未办结 open", "已超期 overdue now",
                       "签收超期告警 receipt alerts", "办结超期告警 answer alerts"], rows)
        cities = [[province_label(target), city or "—", f"{t.routed:,}", f"{t.received_on_time:,}",
                   f"{t.answered_on_time:,}", duration(t.median_answer_ms), f"{t.open:,}", f"{t.overdue:,}",
                   f"{t.alerts.get('receipt', 0) + t.alerts.get('answer', 0):,}"]
                  for (target, city), t in sorted(data.timeliness_by_city.items())]
        body += "\n<h3>按地市 by city (责任地区 the responsible region)</h3>\n" + _table(
            ["目标省份 target", "地市 city", "转办 routed", "按时签收 received on time", "按时办结 answered on time",
             "办结用时中位数 median time to answer", "未办结 open", "已超期 overdue now", "超期告警 alerts"], cities)
    else:
        body = '<p class="muted">本月无跨省协同案件 no cross-province cases this month</p>'
    return f"""<section class="case-timeliness">
<h2>跨省协同 Cross-province cases</h2>
<p class="muted">按转办月份 by the month routed; 办结 answered = 答复或退回 an answer or a decline;
超期 overdue = 未办结且已过签收或办结时限 open and past the receipt or answer deadline</p>
{body}
</section>"""


def _registers_section(data: ReportData) -> str:
    """Per register (road, then water) and party: events this month and current records."""
    tables = []
    for family, label in (("road", "道路运输 Road transport"), ("water", "水路运输 Water transport")):
        registers = [r.entity_type for r in declarations() if (r.entity_type in ROAD_REGISTERS) == (family == "road")]
        rows = []
        for register in registers:
            records = data.records.get(register, {})
            parties = sorted({p for p, per in data.by_entity.items() if per.get(register)} | set(records))
            rows += [[ENTITY_LABELS.get(register, register), province_label(party),
                      f"{data.by_entity.get(party, {}).get(register, 0):,}", f"{records.get(party, 0):,}"]
                     for party in parties]
        body = (_table(["登记簿 register", "参与方 party", "本月事件 events this month", "当前记录 current records"],
                       rows, numeric_from=2) if rows else '<p class="muted">无数据 no data</p>')
        tables.append(f'<div data-family="{family}"><h3>{escape(label)}</h3>{body}</div>')
    return f"""<section class="registers">
<h2>登记簿 Registers</h2>
<p class="muted">当前记录 current records = 报告生成时各登记簿的现行记录 live records when the report was made</p>
<div class="pair">{"".join(tables)}</div>
</section>"""


def _parties_section(data: ReportData) -> str:
    """The parties that are not provinces, by name: kind, jurisdiction, registers, and their month."""
    rows = []
    for code, party in _PARTIES.items():
        if party.kind == PROVINCE:
            continue
        now = data.at(code)
        sent = ", ".join(f"{ENTITY_LABELS.get(e, e)} {n:,}" for e, n in sorted(data.by_entity.get(code, {}).items()))
        rows.append([code, party.name, party.name_en, party.jurisdiction,
                     ", ".join(ENTITY_LABELS.get(r, r) for r in party.registers), sent or "—", f"{now.events:,}",
                     f"{now.rejected:,}"])
    body = _table(["代码 code", "名称 name", "Name", "管辖 jurisdiction", "登记簿 registers", "按登记簿 by register",
                   "事件 events", "拒收 rejected"], rows, numeric_from=6)
    return f"""<section class="parties">
<h2>非省级参与方 Parties that are not provinces</h2>
{body}
</section>"""
