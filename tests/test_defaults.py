"""Defaults that agree with their own help (issue 22.5): IdK's retain weight, and saving the unlearned weights."""
import subprocess
import sys
from pathlib import Path

import gradio as gr

from app.state import Studio
from app.tabs.run import RunTab
from unlearning.methods import get_method, get_preset
from unlearning.methods.idk import IdKConfig
from unlearning.options import options

ROOT = Path(__file__).resolve().parents[1]


def test_idk_defaults_to_the_retain_weight_its_help_recommends_and_its_preset_keeps_what_it_measured():
    alpha = next(o for o in options(IdKConfig) if o.name == "alpha")
    assert alpha.default == 30.0 and "~30" in alpha.help
    assert get_method("idk").config.alpha == 30.0
    # the preset was measured when the default was 1: it says 1 itself, or the new default would change the recipe
    preset = get_preset("idk", "Refuse, keep the rest (measured on the bundled target)")
    assert preset.options == {"beta": 0.02, "alpha": 1.0}
    assert preset.train["params"] == "last_k" and preset.train["last_k"] == 8


def test_the_run_tab_saves_the_weights_by_default_and_says_what_needs_them(tmp_path):
    from tests.fake_runs import session_states

    studio = Studio(runs=tmp_path, preload=False)
    with gr.Blocks():
        tab = RunTab(studio, session_states())
    assert tab.save.value is True
    assert "probes" in tab.save.info and f"{studio.keep_after} newer runs" in tab.save.info


def test_the_cli_saves_weights_only_when_asked_and_its_help_says_what_needs_them():
    out = subprocess.run([sys.executable, "-m", "unlearning", "run", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0
    help_text = " ".join(out.stdout.split())
    assert "--save-weights" in help_text and "`probe RUN_ID`" in help_text
