"""The monthly report shows the water registers and the parties that are not provinces, by name,
beside the road sections, which stay as they were."""

from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser

from sinks.report import ProvinceMonth, ReportData, trend_months
from sinks.report_html import render_html

JUNE = dt.date(2024, 6, 1)


class Sections(HTMLParser):
    """The text of each <section>, by its class (and data-province), and the rows of each table."""

    def __init__(self):
        super().__init__()
        self.sections: dict[str, list[str]] = {}
        self.rows: dict[str, list[list[str]]] = {}
        self._at: list[str] = []
        self._family = ""
        self._row: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self._at.append(attrs["class"] + (f":{attrs['data-province']}" if "data-province" in attrs else ""))
            self.sections[self._at[-1]] = []
        if tag == "div" and "data-family" in attrs:
            self._family = attrs["data-family"]
        if tag == "tr":
            self._row = []
        if tag in ("td", "th") and self._row is not None:
            self._row.append("")

    def handle_endtag(self, tag):
        if tag == "section":
            self._at.pop()
        if tag == "tr" and self._row is not None and self._at:
            key = self._at[-1] + (f"/{self._family}" if self._at[-1] == "registers" else "")
            self.rows.setdefault(key, []).append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._at:
            self.sections[self._at[-1]].append(data)
        if self._row:
            self._row[-1] += data


def parse(html):
    page = Sections()
    page.feed(html)
    return page


def road_month():
    data = ReportData(month=JUNE, months=trend_months(JUNE), provinces=["11", "44"],
                      generated_at=dt.datetime(2024, 7, 1, tzinfo=dt.timezone.utc))
    data.stats[("11", JUNE)] = ProvinceMonth(events=900, rejected=10)
    data.stats[("44", JUNE)] = ProvinceMonth(events=300)
    data.by_entity = {"11": {"vehicle": 600, "operator": 300}, "44": {"case": 300}}
    data.records = {"vehicle": {"11": 590}, "operator": {"11": 280}, "case": {"44": 120}}
    return data


def with_water(data):
    data.provinces.append("CJ")
    data.stats[("CJ", JUNE)] = ProvinceMonth(events=43, rejected=2)
    data.by_entity["CJ"] = {"ship": 40, "shipping_enterprise": 3}
    data.records.update({"ship": {"CJ": 38}, "shipping_enterprise": {"CJ": 3}, "waterway_project": {"ZJ": 5}})
    return data


def test_the_water_registers_are_counted_per_party_in_their_own_table():
    page = parse(render_html(with_water(road_month())))
    water = page.rows["registers/water"]
    assert water[0] == ["登记簿 register", "参与方 party", "本月事件 events this month", "当前记录 current records"]
    cj = "CJ 长江航务管理局 Changjiang River Administration of Navigational Affairs"
    assert water[1:] == [["营运船舶 Operating ships", cj, "40", "38"],
                         ["航运企业 Shipping enterprises", cj, "3", "3"],
                         ["水运建设项目 Water-transport construction projects",
                          "ZJ 珠江航务管理局 Pearl River Administration of Navigational Affairs", "0", "5"]]
    road = page.rows["registers/road"][1:]
    assert ["营运车辆 Operating vehicles", "11 北京 Beijing", "600", "590"] in road
    assert not any("CJ" in row[1] for row in road)


def test_a_navigation_administration_has_its_section_by_name_and_the_parties_table_lists_every_non_province():
    page = parse(render_html(with_water(road_month())))
    cj = "".join(page.sections["province:CJ"])
    assert "CJ 长江航务管理局 Changjiang River Administration of Navigational Affairs" in cj
    assert "营运船舶 Operating ships" in cj and "40" in cj
    parties = {row[0]: row for row in page.rows["parties"][1:]}
    assert set(parties) == {"66", "CJ", "ZJ"}
    assert parties["CJ"][1:3] == ["长江航务管理局", "Changjiang River Administration of Navigational Affairs"]
    assert parties["CJ"][5:] == ["营运船舶 Operating ships 40, 航运企业 Shipping enterprises 3", "43", "2"]
    assert parties["66"][1] == "新疆生产建设兵团" and parties["66"][5:] == ["—", "0", "0"]
    assert parties["ZJ"][1] == "珠江航务管理局"


def test_water_data_leaves_the_road_sections_as_they_were():
    road = render_html(road_month())
    both = render_html(with_water(road_month()))
    sections = lambda html: re.findall(r'<section class="province" data-province="(?:11|44)">.*?</section>',  # noqa: E731
                                       html, re.S)
    assert sections(road) == sections(both) and len(sections(road)) == 2
    overview = lambda html: re.search(r"<h2>总览 Overview</h2>.*?</tr>", html, re.S).group(0)  # noqa: E731
    assert overview(road) == overview(both)  # the overview's header is the same


def test_a_month_without_water_data_says_so():
    page = parse(render_html(road_month()))
    assert "registers/water" not in page.rows
    assert "无数据 no data" in "".join(page.sections["registers"])
