"""Sweeps: a grid becomes checked points, each a saved run tagged with the sweep; cancel keeps finished points."""
import json
import threading

import pytest

from app.views import varied
from unlearning import plots
from unlearning.cli import main
from unlearning.engine import TrainConfig
from unlearning.evaluation import EvalConfig
from unlearning.run_config import RunConfig
from unlearning.runs import RunStore
from unlearning.summary import run_summary
from unlearning.sweep import parse_grid, points, run_sweep

QUICK = EvalConfig(max_new_tokens=2, utility="none", mia=False, retain_rows=2)


def base(bundled) -> dict:
    forget = [r.id for r in bundled.split("forget")[:2]]
    return RunConfig(model="tiny", forget_ids=forget, eval=QUICK,
                     train=TrainConfig(steps=2, learning_rate=1e-3, batch_size=2, score_every=1)).to_dict()


def test_grid_parsing_and_expansion(bundled):
    grid = parse_grid(["lr=1e-3,1e-2", "alpha=1,30", "params=full,lora"])
    assert grid == {"learning_rate": [1e-3, 1e-2], "alpha": [1, 30], "params": ["full", "lora"]}
    configs = [plan.config for plan in points(base(bundled), grid, "sweep-x")]
    assert len(configs) == 8 and {c.sweep for c in configs} == {"sweep-x"}
    first = configs[0]
    assert first.train.learning_rate == 1e-3 and first.train.method_options["alpha"] == 1 and first.train.params == "full"
    assert first.name == "learning_rate=0.001 alpha=1 params=full"
    assert len({json.dumps(c.to_dict(), sort_keys=True) for c in configs}) == 8  # all different


def test_a_bad_point_fails_before_anything_runs(bundled, tmp_path):
    with pytest.raises(ValueError, match="sweep point learning_rate=-1: learning rate must be > 0"):
        points(base(bundled), parse_grid(["lr=1e-3,-1"]), "s")
    with pytest.raises(ValueError, match="unknown option 'nll_cap'"):
        points(base(bundled), parse_grid(["method=grad_diff,npo", "nll_cap=1"]), "s")  # npo takes no nll_cap
    with pytest.raises(ValueError, match="name=value1,value2"):
        parse_grid(["lr"])


def test_a_sweep_runs_every_point_as_a_run_and_cancel_keeps_the_finished_ones(bundled, tmp_path):
    store = RunStore(tmp_path)
    plans = points(base(bundled), parse_grid(["lr=1e-3,1e-2", "seed=0,1"]), "sweep-t")
    started = []
    run_ids = run_sweep(plans, store, on_start=started.append)
    assert run_ids == started and len(run_ids) == 4
    assert all(store.status(r)["status"] == "completed" and store.config(r).sweep == "sweep-t" for r in run_ids)
    summaries = [run_summary(store, r) for r in run_ids]
    assert set(varied(summaries)) == {"lr", "seed"}

    cancel = threading.Event()
    kept = run_sweep(plans, RunStore(tmp_path / "second"), cancel=cancel, on_start=lambda run_id: cancel.set())
    assert len(kept) == 1  # the point running when cancel came stops; no later point starts


def test_the_cli_sweep_prints_every_point(capsys, tmp_path):
    code = main(["sweep", "--model", "tiny", "--forget-n", "2", "--batch-size", "2", "--steps", "2", "--max-new-tokens", "2",
                 "--runs", str(tmp_path), "--grid", "lr=1e-3,1e-2", "--grid", "alpha=1,5", "--score-every", "1",
                 "--retain-rows", "2", "--utility", "none", "--no-mia"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and len(out["points"]) == 4 and out["sweep"].startswith("sweep-")
    assert [p["name"] for p in out["points"]][:2] == ["learning_rate=0.001 alpha=1", "learning_rate=0.001 alpha=5"]
    assert all(p["status"] == "completed" and "after_retain_worst" in p and p["verdict"] for p in out["points"])


def test_trade_off_plot_colours_by_a_setting_and_shows_the_seed_spread():
    runs = [{"id": f"r{i}", "method": "npo", "forget": f, "retain_worst": r, "params": {"lr": lr, "seed": seed}}
            for i, (lr, seed, f, r) in enumerate([(1e-5, 0, 0.2, 0.8), (1e-5, 1, 0.4, 0.6), (3e-5, 0, 0.1, 0.5)])]
    fig = plots.tradeoff_scatter(runs, colour="lr")
    names = [t.name for t in fig.data]
    assert names[:2] == ["lr=1e-05", "lr=3e-05"]
    spread = next(t for t in fig.data if t.name == "mean ± sd over seeds")
    assert list(spread.x) == [pytest.approx(0.3)] and list(spread.y) == [pytest.approx(0.7)]
    assert list(spread.error_x.array) == [pytest.approx(0.1414, abs=1e-3)]  # sd of 0.2 and 0.4


def test_last_k_points_share_one_frozen_prefix_cache(bundled, tmp_path, monkeypatch):
    """Issue 13.2: the frozen blocks run once for the sweep, not once per point, when the points share k."""
    from unlearning import prefix

    heads = []
    real_head = prefix._head
    monkeypatch.setattr(prefix, "_head", lambda model, k: heads.append(k) or real_head(model, k))
    request = base(bundled)
    request["train"].update(params="last_k", last_k=1, precision="fp32", prefix_cache=True)
    plans = points(request, parse_grid(["lr=1e-3,1e-2,3e-2"]), "sweep-p")
    run_ids = run_sweep(plans, RunStore(tmp_path))
    assert len(run_ids) == 3 and heads == [1]  # three points, the prefix computed once
    plans = points(request, parse_grid(["last_k=1,2"]), "sweep-k")
    heads.clear()
    run_sweep(plans, RunStore(tmp_path / "k"))
    assert heads == [1, 2]  # another k: another prefix
