"""The tabs' controls: generated from the options they set, checked by the library, never overwriting a pick."""
import re

import gradio as gr
import pytest

from app.state import Studio
from tests.fake_runs import session_states
from unlearning.engine import TrainConfig
from unlearning.models import model_facts
from unlearning.options import options


def test_method_controls_are_generated_from_the_options_and_checked_by_the_plan(tmp_path):
    from app.tabs.method import MethodTab
    from unlearning.run_config import parse_run_config

    studio = Studio(runs=tmp_path, preload=False)
    with gr.Blocks():
        shared = session_states()
        tab = MethodTab(studio, shared)
    values = {c: getattr(c, "value", None) for c in tab.inputs}
    # one control per option, each starting at the option's default and bounded as the option is
    assert set(tab.train) == {o.name for o in options(TrainConfig)} and tab.train["learning_rate"].value == 3e-5
    assert tab.train["steps"].minimum == 1 and tab.train["steps"].maximum == 100_000
    assert tab.train["last_k"].visible is False and tab.train["params"].value == "full"
    assert type(tab.knobs["grad_diff"]["retain_loss"]).__name__ == "Radio"  # choices from the option
    values[tab.method] = "npo"
    values[tab.knobs["npo"]["beta"]] = 0.5
    values[tab.train["steps"]] = 8
    config, problems = parse_run_config({"train": tab.request(values)})
    assert problems == [] and config.train.method == "npo" and config.train.steps == 8 and config.train.compile is False
    assert config.train.method_options == {"gamma": 1.0, "alpha": 1.0, "retain_loss": "nll", "beta": 0.5}
    values[tab.knobs["npo"]["beta"]] = -1
    values[tab.train["learning_rate"]] = 0
    problems = parse_run_config({"train": tab.request(values)})[1]
    assert problems == ["npo option: beta must be > 0 and <= 1000 (got -1)", "learning rate must be > 0 and <= 1 (got 0)"]


def test_the_model_tab_target_controls_are_target_configs_options(tmp_path):
    """The controls of 'Prepare a target' are made from TargetConfig's options, as the CLI's flags are: the same
    labels, help, defaults and bounds, declared once."""
    from app.tabs.model import ModelTab
    from unlearning.target import TargetConfig

    studio = Studio(runs=tmp_path / "runs", model="tiny", preload=False)
    with gr.Blocks():
        tab = ModelTab(studio, session_states())
    shown = [o for o in options(TargetConfig) if not o.advanced]
    assert list(tab.target) == [o.name for o in shown] == ["epochs", "memorised", "learning_rate", "batch_size"]
    for o in shown:
        control = tab.target[o.name]
        assert (control.label, control.info, control.value) == (o.label, o.help, o.default)
        assert control.maximum == o.le and control.minimum == (o.ge if o.ge is not None else o.gt)


def test_probe_controls_give_checked_options(tmp_path):
    from app.tabs.probe import ProbeTab

    studio = Studio(runs=tmp_path, preload=False)
    with gr.Blocks():
        shared = session_states()
        tab = ProbeTab(studio, shared)
    values = {c: c.value for knobs in tab.knobs.values() for c in knobs.values()}
    values[tab.knobs["relearn"]["steps"]] = 3.0  # a number box hands back floats
    options = tab.options(values, ["relearn", "quantize"])
    assert options["relearn"]["steps"] == 3 and options["relearn"]["control"] == "auto"
    assert options["quantize"] == {"bits": "8,4", "group_size": 0, "reference": True}
    assert type(tab.knobs["relearn"]["control"]).__name__ == "Dropdown"
    values[tab.knobs["quantize"]["bits"]] = "8,1"
    with pytest.raises(ValueError, match="between 2 and 16"):
        tab.options(values, ["quantize"])


def test_a_preset_sets_the_method_and_training_controls(tmp_path):
    from app.tabs.method import CUSTOM, MethodTab

    studio = Studio(runs=tmp_path, preload=False)
    with gr.Blocks():
        tab = MethodTab(studio, session_states())
    values = tab.apply_preset("seq_grad_diff", "SemEval-2025 winner")
    train = dict(zip(tab.train, values))
    assert train["params"] == "last_k" and train["last_k"] == 8 and train["learning_rate"] == 1e-5
    own = dict(zip([(m, o) for m, c in tab.knobs.items() for o in c], values[len(tab.train):]))
    assert own[("seq_grad_diff", "retain_ratio")] == 7 and own[("grad_diff", "alpha")] == gr.skip()
    assert "AILS-NTUA" in values[-1]
    assert all(v == gr.skip() for v in tab.apply_preset("grad_diff", CUSTOM)[:-1])


def test_a_redraw_leaves_a_dropdown_value_alone_unless_it_is_gone():
    """The Runs tab's redraw after a run ends must not write back the sweep it was called with: the user may have
    picked another one meanwhile. Only a value that is no longer a choice (a deleted sweep) is reset."""
    from app.tabs.runs import ALL_RUNS, keep_or_reset

    value, kept = keep_or_reset("sweep-a", [ALL_RUNS, "sweep-b", "sweep-a"])
    assert value == "sweep-a" and kept["choices"] == [ALL_RUNS, "sweep-b", "sweep-a"] and "value" not in kept
    value, reset = keep_or_reset("sweep-gone", [ALL_RUNS, "sweep-b"])
    assert value == reset["value"] == ALL_RUNS


def test_the_data_tab_loads_a_part_of_a_lume_folder_and_says_what_a_run_would_cut(tmp_path, tiny, monkeypatch):
    from app.tabs import data as data_tab_module
    from tests.test_data import LUME_VALIDATION, write_both_parts

    if not LUME_VALIDATION.is_dir():
        pytest.skip(f"{LUME_VALIDATION} not present")
    folder = str(write_both_parts(tmp_path / "lume", LUME_VALIDATION))
    studio = Studio(runs=tmp_path / "runs", model="tiny", preload=False)
    with gr.Blocks():
        tab = data_tab_module.DataTab(studio, session_states())
    monkeypatch.setattr(studio, "facts", lambda source: model_facts(tiny))  # as if the session's model had loaded here
    monkeypatch.setattr(data_tab_module, "cached_model", lambda source: tiny)
    out = tab.load_source("lume", folder, None, "tiny", "train")
    about = out[9]
    assert out[0] == f"{folder}#train" and about.startswith("**lume-train** · 20 samples")
    assert about.endswith("Every sample fits the 1024 tokens a run trains on, whole.")
    monkeypatch.setattr(data_tab_module, "sample_length", lambda model: 300)  # a model with a shorter context
    about = tab.load_source("lume", folder, None, "tiny", "validation")[9]
    assert "**lume-validation** · 532 samples" in about
    assert re.search(r"\*\*Long samples:\*\* \d+ of 532 samples are longer than 300 tokens: their prompts lose their "
                     r"first tokens, their answers are whole", about)
