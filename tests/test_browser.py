"""The whole studio in a real browser: load, tick, pick, run (watching the live curve), compare, metrics, reload, runs.

Starts `python -m app --model tiny` on a free port with a fresh runs folder and drives Debian's chromium through
playwright. Skipped only where chromium is missing and we are not in CI (CI=true): there it fails instead.
Every tab is photographed on the way; the pictures replace the tracked ones in assets/screenshots/ only when asked
(UNLEARNING_SCREENSHOTS=1), so a test run leaves the working tree as it was.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "assets" / "screenshots"
WRITE_SHOTS = "UNLEARNING_SCREENSHOTS"  # =1: the browser tests write assets/screenshots
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STEPS = 8
IN_CI = os.environ.get("CI", "").lower() == "true"

if not Path(CHROMIUM).exists():
    if IN_CI:
        pytest.fail(f"{CHROMIUM} is missing: CI must run the browser test (make browser installs it)", pytrace=False)
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); the browser test runs in CI", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect  # noqa: E402

from unlearning.evaluation.verdict import ASPECTS  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(runs: Path, log_path: Path, model: str = "tiny") -> Iterator[str]:
    """`python -m app --model tiny` (or another model) on a free port over `runs`; yields its URL once it answers,
    stops it after."""
    port = free_port()
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "app", "--model", model, "--runs", str(runs), "--port", str(port)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the app exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if time.time() > deadline:
            proc.kill()
            pytest.fail(f"the app did not answer within 120 s:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.5)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def server(tiny_app):
    return tiny_app


@contextmanager
def browser_page(browser: Browser) -> Iterator[Page]:
    """A page of its own (a fresh context: its own studio session) at the screenshots' size, 30 s default timeout."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(scope="module")
def page(server, chromium):
    with browser_page(chromium) as page:
        yield page


def open_tab(page: Page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def tick_forget_rows(page: Page, count: int) -> None:
    """Tick the data table's first `count` rows (the forget split), each counted by the selection summary.

    On a loaded machine the table can be redrawn between its first paint and a click, which then lands on the old
    box: a box that reads unticked is ticked again, as a user would; one that reads ticked while the summary never
    counts it is the studio losing the tick, and fails."""
    rows, summary = page.locator("#data-table").get_by_role("row"), page.locator("#selection-summary")
    expect(rows.nth(count)).to_contain_text("forget", timeout=30_000)  # row 0 is the header
    for i in range(count):
        box = rows.nth(i + 1).get_by_role("checkbox")
        for _ in range(3):
            box.click()
            try:
                expect(summary).to_contain_text(f"{i + 1} sample", timeout=20_000)
                break
            except AssertionError:
                assert not box.is_checked(), f"row {i + 1} reads ticked but the summary never counted it"
        expect(summary).to_contain_text(f"{i + 1} sample")


def shoot(page: Page, name: str) -> None:
    """Photograph the page from its top: into assets/screenshots/NAME.png with UNLEARNING_SCREENSHOTS=1, else only
    taken (the page renders the same either way)."""
    write = os.environ.get(WRITE_SHOTS) == "1"
    if write:
        SHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(400)  # let plots finish their transition
    page.screenshot(path=str(SHOTS / f"{name}.png") if write else None)


def test_screenshots_are_written_only_when_asked(tmp_path, monkeypatch):
    class Camera:  # what shoot uses of a page
        def evaluate(self, script: str) -> None:
            pass

        def wait_for_timeout(self, ms: int) -> None:
            pass

        def screenshot(self, path: str | None = None) -> bytes:
            if path:
                Path(path).write_bytes(b"png")
            return b"png"

    monkeypatch.setattr(sys.modules[__name__], "SHOTS", tmp_path / "shots")
    monkeypatch.delenv(WRITE_SHOTS, raising=False)
    shoot(Camera(), "model")
    assert not (tmp_path / "shots").exists()
    monkeypatch.setenv(WRITE_SHOTS, "1")
    shoot(Camera(), "model")
    assert [p.name for p in (tmp_path / "shots").iterdir()] == ["model.png"]


def curve_points(page: Page) -> int:
    return page.locator("#run-curves .scatterlayer .trace path.point").count()


def test_whole_flow(server, page: Page):
    url, runs = server
    page.goto(url)

    # Model: the tiny model was preloaded as a job; its facts appear when the job ends (on a fresh machine the
    # first load also converts the default model's tokenizer once, hence the long wait)
    expect(page.locator("#model-facts")).to_contain_text("LlamaForCausalLM", timeout=180_000)
    expect(page.locator("#model-progress")).to_contain_text("done")
    shoot(page, "model")

    # Data: tick three forget samples in the table
    open_tab(page, "Data")
    tick_forget_rows(page, 3)
    expect(page.locator("#selection-summary")).to_contain_text("3 samples selected to forget")
    shoot(page, "data")

    # Method: gradient difference, few steps; the tiny model's suggested learning rate was filled in
    open_tab(page, "Method")
    page.locator("#method-picker input").click()
    page.get_by_role("option", name="Gradient difference", exact=True).click()
    expect(page.locator("#method-explainer")).to_contain_text("Gradient ascent on the forget set")
    expect(page.locator("#method-explainer .katex").first).to_be_visible()  # the formula is typeset
    page.locator("#steps input").fill(str(STEPS))
    expect(page.locator("#learning-rate input")).to_have_value("0.001")
    shoot(page, "method")

    # Run: short generations, start, and watch the curve grow while the job is still running
    open_tab(page, "Run")
    expect(page.locator("#run-plan")).to_contain_text("forget 3 samples")
    page.get_by_text("Run settings").click()
    page.locator("#eval-max-new-tokens input").fill("8")
    page.get_by_text("Run settings").click()  # folded again: the curve stays in view
    page.locator("#start-run").click()
    progress = page.locator("#run-progress")
    seen_live = None
    deadline = time.time() + 150
    while time.time() < deadline:
        text = progress.inner_text()
        step = re.search(rf"step (\d+)/{STEPS}", text)
        state = progress.locator(".us-progress").get_attribute("data-state")
        if step and state == "running" and curve_points(page) >= 1:
            seen_live = (int(step.group(1)), curve_points(page))
            break
        if state in ("done", "failed", "cancelled"):
            break
        page.wait_for_timeout(200)
    assert seen_live is not None, f"never saw the curve while training; progress said: {progress.inner_text()!r}"
    expect(progress.locator(".us-progress")).to_have_attribute("data-state", "done", timeout=150_000)
    expect(page.locator("#run-result")).to_contain_text("finished")
    assert curve_points(page) >= STEPS  # forget and retain NLL, one point per step each
    shoot(page, "run")

    # Compare: before/after generations of the three forget samples, with scores
    open_tab(page, "Compare")
    forget_rows = page.locator("#compare-forget table.compare-table tbody tr")
    expect(forget_rows).to_have_count(3, timeout=20_000)
    expect(forget_rows.first.locator("td.score")).to_contain_text("→")
    expect(page.locator("#compare-retain table.compare-table tbody tr").first).to_be_visible()
    # the verdict says what happened in words, and the per-token view colours the chosen answer's tokens
    expect(page.locator("#compare-verdict .us-finding")).to_have_count(len(ASPECTS))
    expect(page.locator("#compare-verdict")).to_contain_text("Forgot")
    tokens = page.locator("#token-view #tokens-after .us-tok")
    expect(tokens.first).to_be_visible()
    assert tokens.count() >= 2 and tokens.first.get_attribute("title").startswith("p = ")
    shoot(page, "compare")

    # Metrics: real numbers in the before/after table
    open_tab(page, "Metrics")
    final = page.locator('#metrics-table td[data-metric="final"]')
    expect(final).to_have_text(re.compile(r"^\d\.\d{3}$"), timeout=20_000)
    expect(page.locator('#metrics-table td[data-metric="official:forget"]')).to_have_text(re.compile(r"^\d\.\d{3}$"))
    expect(page.locator('#metrics-table td[data-metric="extraction_strength:forget"]')).to_have_text(re.compile(r"^\d\.\d{3}$"))
    expect(page.locator("#metrics-cards")).to_contain_text("SemEval final")
    verdict = page.locator("#metrics-verdict")
    for title in ASPECTS.values():
        expect(verdict).to_contain_text(title)
    expect(verdict.locator(".us-mode")).to_contain_text("Fast mode")
    shoot(page, "metrics")

    # A reload re-attaches: the finished run is in the Runs table, read from disk
    run_id = next(p.name for p in runs.iterdir() if re.match(r"\d{8}-\d{6}-", p.name))
    page.reload()
    open_tab(page, "Data")
    expect(page.locator("#selection-summary")).to_contain_text("3 samples selected to forget")  # kept by the browser
    open_tab(page, "Runs")
    table = page.locator("#runs-table")
    expect(table).to_contain_text(run_id, timeout=20_000)
    expect(table).to_contain_text("completed")
    expect(page.locator("#runs-scatter .scatterlayer .trace path.point").first).to_be_attached()
    shoot(page, "runs")

    # Probe: the relearning attack on that run (its unlearned model is still in memory), two steps
    open_tab(page, "Probe")
    choice = page.locator("#probe-choice")
    for other in ("Quantisation attack", "Asked differently"):
        choice.locator("label").filter(has_text=other).click()
    expect(choice.locator("input:checked")).to_have_count(1)
    page.get_by_text("Options: Relearning attack").click()
    steps = page.locator("#probe-options-relearn").get_by_label("steps", exact=True)
    steps.fill("2")
    steps.press("Tab")  # commit the value before the click: under load the click once sent the default 10
    page.get_by_text("Options: Relearning attack").click()  # folded again: the results stay in view
    page.locator("#run-probes").click()
    expect(page.locator("#probe-progress .us-progress")).to_have_attribute("data-state", "done", timeout=120_000)
    card = page.locator('#probe-results [data-probe="relearn"]')
    expect(card).to_contain_text("recovered", timeout=20_000)
    expect(page.locator("#probe-curve .scatterlayer .trace path.point").first).to_be_attached()
    assert page.locator("#probe-curve .scatterlayer .trace path.point").count() >= 2  # steps 0 and 2
    assert json.loads((runs / run_id / "probes.json").read_text())["relearn"]["options"]["steps"] == 2
    shoot(page, "probe")
    open_tab(page, "Runs")
    expect(page.locator("#runs-table")).to_contain_text("relearn", timeout=20_000)  # the robust? column

    open_tab(page, "Learn")
    expect(page.get_by_text("Why a single score can lie")).to_be_visible()
    shoot(page, "learn")


def sweep_runs(runs: Path) -> dict[str, str]:
    """Run id -> status of every run that belongs to a sweep."""
    out = {}
    for folder in runs.iterdir():
        try:
            if json.loads((folder / "config.json").read_text()).get("sweep"):
                out[folder.name] = json.loads((folder / "status.json").read_text())["status"]
        except (OSError, ValueError):
            pass  # being written
    return out


def test_trade_offs_in_one_run_and_a_sweep(server, page: Page):
    """Issue 11 from the browser: scores during the run drawn live as a trajectory, the best state kept and reported,
    and a 4-point sweep (2 learning rates x 2 seeds) whose Pareto front the Runs tab draws. (The guard needs a model with a retain score to lose:
    tests/test_monitor.py checks it through the engine and the CLI on a tiny model that memorised its samples.)"""
    url, runs = server
    open_tab(page, "Method")
    page.get_by_text("During the run: scores, per-sample balance, best state, guard").click()
    page.locator("#score-every input").fill("2")
    page.locator("#keep-best input").check()

    open_tab(page, "Run")
    page.locator("#start-run").click()
    # only a run that keeps its best state reports one: this run's result, not the previous run's "done"
    expect(page.locator("#run-kept")).to_contain_text(re.compile(r"Kept the state of step \d+"), timeout=150_000)
    expect(page.locator("#run-progress .us-progress")).to_have_attribute("data-state", "done")
    trajectory = page.locator("#run-trajectory .scatterlayer .trace path.point")
    deadline = time.time() + 20
    while trajectory.count() < STEPS // 2 and time.time() < deadline:  # the plot redraws once the result is in
        page.wait_for_timeout(250)
    assert trajectory.count() >= STEPS // 2  # scored at step 0 and every 2 steps

    # the sweep's points: two steps each, no utility or MIA, so four of them take a minute
    open_tab(page, "Method")
    page.locator("#steps input").fill("2")
    open_tab(page, "Run")
    page.get_by_text("Run settings").click()
    page.locator("#eval-utility").get_by_label("none", exact=True).check()
    page.locator("#eval-mia input").uncheck()
    page.get_by_text("Run settings").click()
    page.get_by_text("Sweep: run a grid of settings as one job").click()
    page.locator("#sweep-grid textarea").fill("lr=1e-3,5e-3\nseed=0,1")
    expect(page.locator("#sweep-plan")).to_contain_text("4 points", timeout=20_000)
    page.locator("#start-sweep").click()
    deadline = time.time() + 600
    while time.time() < deadline:
        statuses = sweep_runs(runs)
        if len(statuses) == 4 and all(s == "completed" for s in statuses.values()):
            break
        time.sleep(1)
    assert len(statuses) == 4 and set(statuses.values()) == {"completed"}, statuses

    open_tab(page, "Runs")
    sweep = json.loads((runs / next(iter(statuses)) / "config.json").read_text())["sweep"]
    page.locator("#runs-sweep input").click()
    page.get_by_role("option", name=sweep, exact=True).click()
    expect(page.locator("#runs-table")).to_contain_text("lr", timeout=20_000)
    scatter = page.locator("#runs-scatter")
    expect(scatter.locator(".legend")).to_contain_text("Pareto front", timeout=20_000)
    table = page.locator("#runs-table")
    others = [p.name for p in runs.iterdir() if re.match(r"\d{8}-\d{6}-", p.name) and p.name not in statuses]
    assert others
    for run_id in others:  # the filter applies once the table redraws: only the sweep's own points stay
        expect(table).not_to_contain_text(run_id, timeout=20_000)
    for run_id in statuses:
        expect(table).to_contain_text(run_id)
    shoot(page, "sweep")
