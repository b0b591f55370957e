"""Issue 22.1 from the browser: the k and LoRA rank controls appear with their training mode, and what they hold
is what the run trains (its config.json), what the run plan says and what the Model tab's memory table sizes."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

# first: it skips the module where chromium is missing, before playwright is imported
from tests.test_browser import browser_page, open_tab, tick_forget_rows  # isort: skip
from playwright.sync_api import Page, expect  # noqa: E402


@pytest.fixture(scope="module")
def server(tiny_app):
    return tiny_app


@pytest.fixture(scope="module")
def page(server, chromium):
    with browser_page(chromium) as page:
        yield page


def finished_config(runs: Path, known: set[str]) -> dict:
    """config.json of the one run not in `known`, once it completed."""
    deadline = time.time() + 150
    while time.time() < deadline:
        new = [p for p in runs.iterdir() if p.is_dir() and p.name not in known and (p / "status.json").exists()]
        if new and json.loads((new[0] / "status.json").read_text())["status"] == "completed":
            return json.loads((new[0] / "config.json").read_text())
        time.sleep(0.5)
    pytest.fail(f"no new completed run in {runs}")


def test_k_and_rank_show_with_their_mode_and_reach_the_run(server, page: Page):
    url, runs = server
    earlier = {p.name for p in runs.iterdir()}  # the shared studio's runs of other tests
    page.goto(url)
    expect(page.locator("#model-facts")).to_contain_text("LlamaForCausalLM", timeout=180_000)
    memory = page.locator("#model-info table")
    expect(memory).to_contain_text("last_k (k=4)")

    open_tab(page, "Data")
    tick_forget_rows(page, 1)

    open_tab(page, "Run")  # quick runs: one step, two new tokens, no utility or MIA
    page.get_by_text("Run settings").click()
    page.locator("#eval-max-new-tokens input").fill("2")
    page.locator("#eval-utility").get_by_label("none", exact=True).check()
    page.locator("#eval-mia input").uncheck()
    page.get_by_text("Run settings").click()

    open_tab(page, "Method")
    page.locator("#steps input").fill("1")
    k, rank = page.locator("#last-k"), page.locator("#lora-rank")
    expect(k).to_have_count(0)  # full training: neither matters, neither is drawn
    expect(rank).to_have_count(0)
    page.locator("#params").get_by_label("only the last k layers", exact=True).check()
    expect(k).to_be_visible()
    expect(rank).to_have_count(0)
    k.locator("input").fill("1")
    k.locator("input").press("Tab")
    open_tab(page, "Model")
    expect(memory).to_contain_text("last_k (k=1)")  # the table sizes the k the run will use

    open_tab(page, "Run")
    expect(page.locator("#run-plan")).to_contain_text("training the last 1 blocks")
    page.locator("#start-run").click()
    config = finished_config(runs, earlier)
    assert (config["train"]["params"], config["train"]["last_k"]) == ("last_k", 1)

    open_tab(page, "Method")
    page.locator("#params").get_by_label("LoRA adapters", exact=True).check()
    expect(rank).to_be_visible()
    expect(k).to_be_hidden()
    rank.locator("input").fill("3")
    rank.locator("input").press("Tab")
    open_tab(page, "Model")
    expect(memory).to_contain_text("lora (rank 3)")
    open_tab(page, "Run")
    expect(page.locator("#run-plan")).to_contain_text("training LoRA adapters of rank 3")
    known = {p.name for p in runs.iterdir()}
    page.locator("#start-run").click()
    config = finished_config(runs, known)
    assert (config["train"]["params"], config["train"]["lora_rank"]) == ("lora", 3)

    # a preset that trains the last 8 blocks shows its k, and the table and the plan say 8 (the tiny model has 2)
    open_tab(page, "Method")
    page.locator("#method-picker input").click()
    page.get_by_role("option", name="IdK preference (DPO with refusals)", exact=True).click()
    page.locator("#method-preset input").click()
    page.get_by_role("option", name="Refuse, keep the rest (measured on the bundled target)", exact=True).click()
    expect(k).to_be_visible()
    expect(k.locator("input")).to_have_value("8")
    open_tab(page, "Model")
    expect(memory).to_contain_text("last_k (k=8)")
    open_tab(page, "Run")
    expect(page.locator("#run-plan")).to_contain_text("k = 8 last layers to train, but the model has only 2")
