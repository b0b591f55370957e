"""Issue 22.7 in a real browser: the HTML report opens in chromium with the network off, verdict and plots drawn."""
from __future__ import annotations

# first: it skips the module where chromium is missing, before playwright is imported
import tests.test_browser  # noqa: F401  isort: skip
from playwright.sync_api import expect  # noqa: E402
from tests.test_html_report import runs  # noqa: E402,F401  (the module fixture: two quick runs, one probed)
from unlearning.evaluation import judge  # noqa: E402
from unlearning.html_report import write_report  # noqa: E402
from unlearning.summary import run_reports  # noqa: E402


def test_the_report_opens_offline_with_its_verdict_and_interactive_plots(runs, tmp_path, chromium):
    store, ids = runs
    page_file = write_report(store, ids, tmp_path / "report.html")
    before, after = run_reports(store, ids[0])
    verdict = judge(before, after, store.probes(ids[0]))
    context = chromium.new_context(offline=True)
    fetched = []
    context.on("request", lambda request: fetched.append(request.url))
    page = context.new_page()
    page.goto(page_file.as_uri())
    run = page.locator(f"#run-{ids[0]}")
    for finding in verdict.findings:
        expect(run.locator(f'.finding[data-aspect="{finding.aspect}"]')).to_contain_text(finding.text)
    # plotly drew every figure from the inlined library: an svg per plot, with its traces' data
    plotted = page.locator(".js-plotly-plot .main-svg")
    expect(plotted.first).to_be_visible()
    assert page.locator(".js-plotly-plot").count() == 1 + 2 * len(ids)
    traces = page.evaluate("() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(p => p.data.length)")
    assert all(n > 0 for n in traces), traces
    assert page.evaluate("() => typeof Plotly.react") == "function"  # interactive, not a picture
    context.close()
    assert [url for url in fetched if not url.startswith("file:")] == []
