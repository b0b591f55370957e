"""The HTML report (issue 22.7): one self-contained page of runs, from the CLI and the Runs tab."""
import html
import json
import re

import pytest
from plotly.offline import get_plotlyjs

from unlearning.cli import main
from unlearning.engine import TrainConfig
from unlearning.evaluation import EvalConfig, judge
from unlearning.experiment import run_experiment
from unlearning.html_report import build
from unlearning.plan import make_plan
from unlearning.run_config import RunConfig
from unlearning.runs import RunStore
from unlearning.summary import run_reports

HEADLINE = "came back: 64% recovered after 2 steps"


@pytest.fixture(scope="module")
def runs(bundled, tmp_path_factory):
    """Two quick tiny-model runs, the first one probed: (store, run ids)."""
    store = RunStore(tmp_path_factory.mktemp("runs"))
    forget = [r.id for r in bundled.split("forget")[:3]]
    ids = []
    for lr in (1e-3, 3e-3):
        config = RunConfig(model="tiny", forget_ids=forget, name=f"lr {lr:g}",
                           train=TrainConfig(steps=2, learning_rate=lr, batch_size=3, score_every=1),
                           eval=EvalConfig(max_new_tokens=2, retain_rows=4, utility="none", mia=False))
        ids.append(run_experiment(make_plan(config), store)[0])
    store.save_probe(ids[0], "relearn", {"title": "Relearning attack", "asks": "?", "date": "2026-12-06", "seconds": 1.0,
                                         "result": {"headline": {"value": 0.64, "unit": "%", "status": "bad",
                                                                 "text": HEADLINE}}})
    return store, ids


def test_the_page_holds_every_run_s_verdict_scores_curves_probes_and_settings(runs):
    store, ids = runs
    page = build(store, ids)
    assert page.count(get_plotlyjs()) == 1  # plotly.js inlined once, for every plot
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=", page)  # nothing to fetch
    plots = re.findall(r'Plotly\.newPlot\(\s*"([^"]+)"', page)
    assert len(plots) == 1 + 2 * len(ids)  # the trade-off plot, then each run's loss and score curves
    for run_id in ids:
        before, after = run_reports(store, run_id)
        for finding in judge(before, after, store.probes(run_id)).findings:  # the library's verdict, word for word
            assert html.escape(finding.text) in page
        settings = html.escape(json.dumps(store.config(run_id).to_dict(), indent=2))
        assert settings in page  # the exact settings
        assert f'id="run-{run_id}"' in page
    assert HEADLINE in page and 'data-probe="relearn"' in page
    assert "Official score · forget" in page and "Official score · retain" in page
    generations = page.count("<td><code>")
    assert 0 < generations <= 2 * 2 * 5  # per run, at most 5 forget and 5 retain samples


def test_the_cli_writes_the_page_and_refuses_an_unknown_run(runs, tmp_path, capsys):
    store, ids = runs
    out = tmp_path / "report.html"
    assert main(["report", *ids, "--out", str(out), "--runs", str(store.root)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["report"] == str(out) and printed["runs"] == ids and out.stat().st_size == printed["bytes"]
    assert out.read_text().startswith("<!doctype html>")
    missing = tmp_path / "missing.html"
    assert main(["report", "20990101-000000-deadbeef", "--out", str(missing), "--runs", str(store.root)]) == 2
    assert "no run 20990101-000000-deadbeef" in json.loads(capsys.readouterr().out)["error"]
    assert not missing.exists()


def test_the_runs_tab_reports_the_open_run_or_the_shown_sweep(runs, tmp_path):
    import gradio as gr

    from app.state import Studio
    from app.tabs.runs import ALL_RUNS, RunsTab
    from tests.fake_runs import session_states

    store, ids = runs
    studio = Studio(runs=store.root, preload=False)
    with gr.Blocks():
        tab = RunsTab(studio, session_states())
    assert tab.reported(ids[1], ALL_RUNS) == [ids[1]]
    with pytest.raises(ValueError, match="Open a run first"):
        tab.reported("", ALL_RUNS)
    page = studio.report([ids[1]]).read_text()
    assert f'id="run-{ids[1]}"' in page and f'id="run-{ids[0]}"' not in page
    for run_id in ids:  # a sweep's runs, all of them
        config = store.path(run_id) / "config.json"
        config.write_text(json.dumps({**json.loads(config.read_text()), "sweep": "sweep-1"}))
    assert sorted(tab.reported("", "sweep-1")) == sorted(ids)


def test_the_library_reports_without_gradio():
    """The report and the plots it draws with live in the library, which never imports the UI toolkit."""
    import subprocess
    import sys
    from pathlib import Path

    code = "import sys, unlearning.cli, unlearning.html_report; assert 'gradio' not in sys.modules, 'gradio imported'"
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
