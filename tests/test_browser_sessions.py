"""Two users at once, and a store with damaged runs, in a real browser (issues 12.1 and 12.4).

The app starts on a runs folder holding damaged runs (binary status, an empty folder, a config with an unknown
key): it must start, and its Runs tab must list them with the reason. Then two browser contexts (two users, each
with its own storage): B loads its own table while A has ticked samples of the bundled data; A's run must train
on A's samples of A's data, and each page must keep showing its own dataset.
"""
from __future__ import annotations

import json
import re
import shutil
import time

from playwright.sync_api import Page, expect

from tests.fake_runs import GOOD_AFTER, fake_run
from tests.test_browser import open_tab, running_app, tick_forget_rows
from unlearning.data import bundled_dataset
from unlearning.runs import RunStore


def seed_damaged_runs(store: RunStore) -> dict[str, str]:
    good = fake_run(store, "good", "npo", GOOD_AFTER)
    binary, empty, unknown = (fake_run(store, name, "npo", GOOD_AFTER) for name in ("binary", "empty", "unknown"))
    (store.root / binary / "status.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    shutil.rmtree(store.root / empty)
    (store.root / empty).mkdir()
    config = json.loads((store.root / unknown / "config.json").read_text())
    (store.root / unknown / "config.json").write_text(json.dumps({**config, "colour": "blue"}))
    return {"good": good, "binary": binary, "empty": empty, "unknown": unknown}


def open_studio(browser, url: str) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.set_default_timeout(30_000)
    page.goto(url)
    expect(page.locator("#model-facts")).to_contain_text("LlamaForCausalLM", timeout=180_000)
    return page


def test_damaged_runs_are_listed_and_each_session_keeps_its_own_data(tmp_path, chromium):
    runs = RunStore(tmp_path / "runs")
    seeded = seed_damaged_runs(runs)
    table = tmp_path / "ours.csv"
    table.write_text("id,input,output,split\nours-1,Who wrote the note?,We did,forget\n"
                     "ours-2,Where was it?,Here,forget\nours-3,When was it?,Now,retain\n")
    with running_app(runs.root, tmp_path / "app.log") as url:
        a, b = open_studio(chromium, url), open_studio(chromium, url)

        # the app started over damaged runs, and lists every one with the reason: the count is honest
        open_tab(a, "Runs")
        listing = a.locator("#runs-table")
        expect(listing).to_contain_text("damaged: status.json: not text (binary data)", timeout=20_000)
        expect(listing).to_contain_text("damaged: config.json is missing; status.json is missing")
        expect(listing).to_contain_text("damaged: config.json: unknown setting 'colour'")
        expect(a.get_by_text(re.compile(r"4 runs, 1 completed, 3 damaged"))).to_be_visible()

        # A ticks two bundled samples; then B loads its own table
        open_tab(a, "Data")
        tick_forget_rows(a, 2)
        ticked = [r.id for r in bundled_dataset().split("forget")[:2]]  # the table lists the forget split first
        open_tab(b, "Data")
        b.get_by_text("Change dataset").click()
        b.locator("#data-source input").click()
        b.get_by_role("option", name=re.compile("Upload your own table")).click()
        b.locator("#data-upload input[type=file]").set_input_files(str(table))
        time.sleep(1)  # the upload reaches the server before the load asks for it
        b.locator("#load-data").click()
        expect(b.locator("#data-table")).to_contain_text("Who wrote the note?", timeout=30_000)
        expect(b.locator("#us-status")).to_contain_text("ours.csv")

        # A's page still shows A's data, and A's run trains on A's samples of it
        expect(a.locator("#us-status")).to_contain_text("Data bundled")
        open_tab(a, "Method")
        a.locator("#steps input").fill("3")
        open_tab(a, "Run")
        expect(a.locator("#run-plan")).to_contain_text("forget 2 samples")
        a.get_by_text("Run settings").click()
        a.locator("#eval-max-new-tokens input").fill("2")
        a.locator("#start-run").click()
        expect(a.locator("#run-progress .us-progress")).to_have_attribute("data-state", "done", timeout=180_000)
        [run_id] = set(runs.ids()) - set(seeded.values())
        config = runs.config(run_id)
        assert config.data == "bundled" and config.forget_ids == ticked and config.model == "tiny"
        assert runs.status(run_id)["status"] == "completed"

        # B's page still shows B's table after A's run: nothing of A's reached B either
        b.reload()
        expect(b.locator("#model-facts")).to_contain_text("LlamaForCausalLM", timeout=60_000)
        open_tab(b, "Data")
        expect(b.locator("#data-table")).to_contain_text("Who wrote the note?", timeout=30_000)
        a.context.close()
        b.context.close()
