"""The HTML page in a real browser: headless Chromium renders the tables and every image."""
import pytest

from harness.report.build import build_report
from report.browser import Browser, find_chromium
from report.synthetic import make_record, small_sweep, write

CHROMIUM = find_chromium()
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)")]


def test_page_renders_tables_images_and_sorts(tmp_path):
    sweep = small_sweep(tmp_path / "sweep")
    write(sweep, "hostile", make_record("relu", "exact", 30, 0.5, dataset="<script>alert(1)</script>"))
    report = build_report(sweep, tmp_path / "out")
    with Browser(CHROMIUM) as browser:
        browser.open(report.files["html"])
        page = browser.evaluate("""({
            summary: document.querySelectorAll('#summary tbody tr').length,
            runs: document.querySelectorAll('#runs tbody tr').length,
            images: Array.from(document.images).map(i => [i.complete, i.naturalWidth]),
            alerts: typeof window.__alerted,
            text: document.body.innerText.includes('<script>alert(1)</script>'),
            scripts: document.scripts.length})""")
        browser.evaluate("document.querySelector('#summary thead th:nth-child(5)').click()")
        sorted_once = browser.evaluate("Array.from(document.querySelectorAll('#summary tbody tr')).map(r => r.cells[4].textContent)")
        shot = browser.screenshot(tmp_path / "page.png")
    assert page["summary"] == len(report.summary) == 5  # 4 pairs + the hostile dataset's configuration
    assert page["runs"] == len(report.runs) == 14
    assert len(page["images"]) == len(report.figures) >= 6
    assert all(done and width > 0 for done, width in page["images"])
    assert page["text"] and page["scripts"] == 1  # the hostile value is text; the only script is the sorter
    numbers = [float(t.split()[0]) for t in sorted_once]
    assert numbers == sorted(numbers)
    assert shot.stat().st_size > 10_000
