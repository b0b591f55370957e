"""Issue 15 from the browser: the Run tab's count of forgotten samples moves while a run forgets.

A random tiny model knows nothing, so every sample reads forgotten from step 0: this app runs on a tiny model that
memorised the three forget samples the test ticks, saved as a folder and loaded with `--model FOLDER`, the way a
user loads their own model.
"""
from __future__ import annotations

import time

import pytest

# first: it skips the module where chromium is missing, before playwright is imported
from tests.test_browser import browser_page, open_tab, running_app, shoot, tick_forget_rows  # isort: skip
from playwright.sync_api import Page, expect  # noqa: E402
from unlearning.data import bundled_dataset
from unlearning.engine import TrainConfig, train
from unlearning.models import tiny_model


TICKED = 3  # the Data table's first rows: the first forget samples


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tiny, data = tiny_model(), bundled_dataset()
    forget = [r for r in data.records if r.split == "forget"][:TICKED]
    retain = [r for r in data.records if r.split == "retain"][:1]
    memorise = TrainConfig(method="finetune", steps=60, learning_rate=1e-2, batch_size=TICKED + 1, score_every=0)
    folder = tmp_path_factory.mktemp("memorised")
    train(tiny.model, tiny.tokenizer, forget + retain, [], memorise).model.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    runs = tmp_path_factory.mktemp("runs")
    with running_app(runs, tmp_path_factory.mktemp("log") / "app.log", model=str(folder)) as url:
        yield url


@pytest.fixture(scope="module")
def page(server, chromium):
    with browser_page(chromium) as page:
        yield page


def forgotten_curve(page: Page) -> list[int]:
    """The y values of the scores plot's 'forget samples forgotten' trace, as plotly holds them."""
    return page.evaluate("""() => {
        const plot = document.querySelector('#run-scores .js-plotly-plot');
        const trace = plot && plot.data.find(t => t.name === 'forget samples forgotten');
        return trace ? Array.from(trace.y) : [];
    }""")


def test_the_forgotten_count_moves_and_the_run_ends_when_all_are_forgotten(server, page: Page):
    page.goto(server)
    expect(page.locator("#model-facts")).to_contain_text("LlamaForCausalLM", timeout=180_000)

    open_tab(page, "Data")
    tick_forget_rows(page, TICKED)

    # gradient ascent with per-sample balance: each sample stops being pushed once forgotten, the run ends with all
    open_tab(page, "Method")
    page.locator("#method-picker input").click()
    page.get_by_role("option", name="Gradient ascent", exact=True).click()
    page.locator("#steps input").fill("30")
    page.locator("#learning-rate input").fill("0.003")
    page.get_by_text("During the run: scores, per-sample balance, best state, guard").click()
    page.locator("#score-every input").fill("1")
    page.locator("#skip-forgotten input").check()

    open_tab(page, "Run")
    page.get_by_text("Run settings").click()
    page.locator("#eval-max-new-tokens input").fill("4")
    page.locator("#eval-utility").get_by_label("none", exact=True).check()
    page.locator("#eval-mia input").uncheck()
    page.get_by_text("Run settings").click()
    page.locator("#start-run").click()
    expect(page.locator("#run-progress .us-progress")).to_have_attribute("data-state", "done", timeout=150_000)
    expect(page.locator("#run-result")).to_contain_text(f"all {TICKED} forget samples count as forgotten")

    deadline = time.time() + 20
    while (curve := forgotten_curve(page))[-1:] != [TICKED] and time.time() < deadline:  # the plot redraws last
        page.wait_for_timeout(250)
    assert curve[0] == 0 and curve[-1] == TICKED, curve  # none forgotten at the start (memorised), all at the end
    assert len(curve) < 31  # the run ended early, before its 30 steps
    shoot(page, "balance")


def test_a_target_with_its_oracle_and_a_run_judged_against_it(server, page: Page):
    """The Model tab prepares a target and its oracle in one job; the next run's verdict reads against the oracle:
    knowledge against the oracle's level, privacy by PrivLeak (issue 24). Runs after the test above, on its page.
    (The tiny target reproduces nothing greedily, so its output finding has nothing to read against.)"""
    open_tab(page, "Model")
    offer = page.locator("#prepare-target-now")
    expect(offer).to_contain_text("Prepare a target and its oracle", timeout=60_000)
    page.get_by_text("Prepare a target: make the model memorise the dataset first").click()
    page.locator("#target-epochs input").fill("2")  # the tiny model never memorises: at most 2 epochs, each
    offer.click()
    expect(page.locator("#model-progress")).to_contain_text("its oracle too", timeout=300_000)

    open_tab(page, "Method")
    page.locator("#method-picker input").click()
    page.get_by_role("option", name="IdK preference (DPO with refusals)", exact=True).click()
    page.locator("#steps input").fill("6")
    page.locator("#learning-rate input").fill("0.001")
    open_tab(page, "Run")
    page.get_by_text("Run settings").click()
    page.locator("#eval-mia input").check()
    page.get_by_text("Run settings").click()
    page.locator("#start-run").click()
    progress = page.locator("#run-progress .us-progress")
    expect(progress).not_to_have_attribute("data-state", "done", timeout=30_000)  # the balance run's bar, replaced
    expect(progress).to_have_attribute("data-state", "done", timeout=300_000)
    expect(page.locator("#run-result")).to_contain_text("finished")
    forgot = page.locator("#run-result [data-aspect=forgot]")
    expect(forgot).to_contain_text("Forgot (knowledge)")
    expect(forgot).to_contain_text("the oracle's")
    expect(page.locator("#run-result [data-aspect=privacy]")).to_contain_text("against the oracle")
