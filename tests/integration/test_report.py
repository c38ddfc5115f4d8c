"""``roadx report`` for a demo month: every province present, parsed back from the HTML."""

from __future__ import annotations

import os
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from deploy.cli import main

pytestmark = pytest.mark.integration

DEMO_PROVINCES = ("11", "12", "13")  # the first three of the default province list


class Sections(HTMLParser):
    """Province sections and the text inside each."""

    def __init__(self):
        super().__init__()
        self.text: dict[str, list[str]] = {}
        self.current: str | None = None
        self.svgs = 0
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section" and attrs.get("class") == "province":
            self.current = attrs["data-province"]
            self.text[self.current] = []
        if tag == "svg":
            self.svgs += 1
        self.external += [attrs[a] for a in ("src", "href") if attrs.get(a)]

    def handle_endtag(self, tag):
        if tag == "section":
            self.current = None

    def handle_data(self, data):
        if self.current:
            self.text[self.current].append(data)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROADX_")}
    done = subprocess.run([sys.executable, "-m", "deploy.cli", "demo", "--data-dir", str(data_dir),
                           "--provinces", str(len(DEMO_PROVINCES)), "--events", "3000"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return data_dir


def test_report_for_the_demo_month_has_every_province(demo_dir, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main(["report", "--data-dir", str(demo_dir), "--month", "2024-06", "--out", str(out)]) == 0
    assert "2024-06" in capsys.readouterr().out
    page = Sections()
    page.feed(out.read_text("utf-8"))
    assert set(DEMO_PROVINCES) <= set(page.text)
    assert len(page.text) >= 31  # every configured province has its section
    for code in DEMO_PROVINCES:
        text = " ".join(page.text[code])
        assert "no data this month" not in text
        assert "lag p50" in text
    assert page.external == [] and page.svgs >= 2 + len(page.text)


def test_report_for_a_month_without_data_marks_every_province_empty(demo_dir, tmp_path, capsys):
    out = tmp_path / "empty.html"
    assert main(["report", "--data-dir", str(demo_dir), "--month", "1999-01", "--out", str(out)]) == 0
    page = Sections()
    page.feed(out.read_text("utf-8"))
    assert all("no data this month" in " ".join(t) for t in page.text.values())


def test_bad_month_is_an_error_not_a_traceback(demo_dir, tmp_path, capsys):
    assert main(["report", "--data-dir", str(demo_dir), "--month", "2024-13", "--out", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err
    assert "YYYY-MM" in err and "Traceback" not in err
