"""The monthly report's pure parts: months, scores, and the HTML page built from data."""

from __future__ import annotations

import datetime as dt
from html.parser import HTMLParser

import pytest

from sinks.errors import SinkError
from sinks.report import (CaseTimeliness, ProvinceMonth, ReportData, ServiceUse, add_months, parse_month,
                          province_of_topic, trend_months)
from sinks.report_html import duration, render_html

JUNE = dt.date(2024, 6, 1)


class Page(HTMLParser):
    """Collects province sections, SVG charts, external references and text."""

    def __init__(self):
        super().__init__()
        self.provinces, self.svgs, self.external, self.text, self.scripts = [], 0, [], [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section" and attrs.get("class") == "province":
            self.provinces.append(attrs["data-province"])
        if tag == "svg":
            self.svgs += 1
        if tag == "script":
            self.scripts += 1
        for name in ("src", "href"):
            if attrs.get(name):
                self.external.append(attrs[name])

    def handle_data(self, data):
        self.text.append(data)


def parse(html):
    page = Page()
    page.feed(html)
    return page


def sample():
    data = ReportData(month=JUNE, months=trend_months(JUNE), provinces=["11", "12", "13"])
    data.stats[("11", JUNE)] = ProvinceMonth(events=900, rejected=100, findings_by_dimension={"conformity": 80,
                                             "completeness": 30}, lag_p50_ms=850, lag_p99_ms=4200)
    data.stats[("11", add_months(JUNE, -1))] = ProvinceMonth(events=450)
    data.stats[("12", JUNE)] = ProvinceMonth(events=300)
    data.by_entity = {"11": {"vehicle": 600, "operator": 300}, "12": {"case": 300}}
    data.rejected_by_rule = {"11": {"RQ001": 70, "<script>alert(1)</script>": 30}}
    data.dead_letters = {"11": {"invalid_plate": 4}}
    data.flows = {("11", "12"): 7, ("12", "11"): 2, ("13", "11"): 1}
    data.sources = ["test data"]
    return data


def test_month_is_parsed_to_its_first_day():
    assert parse_month("2024-06") == JUNE


@pytest.mark.parametrize("text", ["2024-13", "2024-6", "June", "2024-06-01", "'; DROP TABLE x", ""])
def test_bad_month_is_refused_with_the_expected_form(text):
    with pytest.raises(SinkError, match="YYYY-MM"):
        parse_month(text)


def test_trend_covers_six_months_ending_with_the_report_month_across_a_year():
    months = trend_months(dt.date(2024, 2, 1))
    assert months[0] == dt.date(2023, 9, 1) and months[-1] == dt.date(2024, 2, 1) and len(months) == 6


def test_score_is_one_minus_events_with_final_findings_over_all_judged_events():
    stats = ProvinceMonth(events=900, rejected=100, findings_by_dimension={"conformity": 80})
    assert stats.score("conformity") == pytest.approx(0.92)
    assert stats.score("relational") == 1.0
    assert ProvinceMonth().score("conformity") is None


def test_province_of_inbound_topic_with_any_prefix():
    assert province_of_topic("t1.prov.44.changes") == "44"
    assert province_of_topic("national.changes") == "unknown"


def test_page_has_a_section_per_province_and_no_external_assets():
    page = parse(render_html(sample()))
    assert page.provinces == ["11", "12", "13"]
    assert page.external == [] and page.scripts == 0
    assert page.svgs >= 2 + 3  # volume bars, heat map, one trend per province


def test_page_labels_are_chinese_and_english():
    text = " ".join(parse(render_html(sample())).text)
    for label in ("北京 Beijing", "完整性 completeness", "规范性 conformity", "关联性 relational",
                  "跨省案件流转", "cross-province case flows", "lag p99"):
        assert label in text


def test_page_shows_scores_lag_rules_and_flows():
    html = render_html(sample())
    text = " ".join(parse(html).text)
    assert "92.0%" in text and "97.0%" in text  # conformity, completeness of 11
    assert "850 ms" in text and "4.2 s" in text
    assert "RQ001" in text and "invalid_plate" in text
    assert "+100.0%" in text  # 450 → 900
    assert "11 → 12: 7" in text  # heat-map cell title


def test_rule_names_from_the_store_are_escaped():
    html = render_html(sample())
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_province_without_data_is_present_and_marked():
    html = render_html(sample())
    section = html[html.index('data-province="13"'):]
    assert "no data this month" in section[:600]


@pytest.mark.parametrize("ms, text", [(None, "—"), (12, "12 ms"), (1500, "1.5 s"), (90_000, "1.5 min"),
                                      (7_200_000, "2.0 h"), (86_400_000 * 900, "900.0 d")])
def test_lag_reads_in_a_fitting_unit(ms, text):
    assert duration(ms) == text


class Cells(HTMLParser):
    """The text of each table row's cells (``<td>``)."""

    def __init__(self):
        super().__init__()
        self.rows, self.cell = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self.cell = ""

    def handle_endtag(self, tag):
        if tag == "td":
            self.rows[-1].append(self.cell)
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def service_section(html):
    start = html.index('<section class="service-use">')
    return html[start:html.index("</section>", start)]


def test_service_use_is_one_row_per_party_with_outcomes_endpoints_and_latency():
    data = sample()
    data.service_use = {
        "44": ServiceUse(7, {"found": 4, "unknown": 1, "denied": 2}, 3, 12.5, 1500.0),
        "11": ServiceUse(3, {"limited": 1, "error": 1, "routed": 1}, 1, 40.0, 41.0),
        "": ServiceUse(1, {"denied": 1}, 1, 0.4, 0.4),
    }
    section = service_section(render_html(data))
    text = " ".join(parse(section).text)
    assert "信息服务使用 Service use" in text
    for label in ("查到 found", "未查到 unknown", "无效 invalid", "拒绝 denied", "限流 limited", "出错 error", "转办 routed",
                  "接口 endpoints", "latency p50", "latency p99"):
        assert label in text
    cells = Cells()
    cells.feed(section)
    assert [row for row in cells.rows if row] == [  # ordered by party code
        ["未识别 unidentified", "1", "0", "0", "0", "1", "0", "0", "0", "1", "0 ms", "0 ms"],
        ["11 北京 Beijing", "3", "0", "0", "0", "0", "1", "1", "1", "1", "40 ms", "41 ms"],
        ["44 广东 Guangdong", "7", "4", "1", "0", "2", "0", "0", "0", "3", "12 ms", "1.5 s"],
    ]


def test_a_month_without_service_requests_says_so():
    section = service_section(render_html(sample()))
    assert "no service requests this month" in section and "<table>" not in section


def timeliness_section(html):
    start = html.index('<section class="case-timeliness">')
    return html[start:html.index("</section>", start)]


def test_case_timeliness_is_one_row_per_target_province():
    data = sample()
    data.timeliness = {"31": CaseTimeliness(2, 0, 0, 46 * 86_400_000, 1, 1, {"receipt": 2}),
                       "11": CaseTimeliness(1, 1, 1, 2 * 86_400_000, 0, 0, {})}
    section = timeliness_section(render_html(data))
    assert "跨省协同 Cross-province cases" in section
    cells = Cells()
    cells.feed(section)
    assert [row for row in cells.rows if row] == [
        ["11 北京 Beijing", "1", "1", "1", "2.0 d", "0", "0", "0", "0"],
        ["31 上海 Shanghai", "2", "0", "0", "46.0 d", "1", "1", "2", "0"],
    ]


def test_a_month_without_routed_cases_says_so():
    section = timeliness_section(render_html(sample()))
    assert "no cross-province cases this month" in section and "<table>" not in section
