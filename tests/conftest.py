import pytest

from tests.fake_runs import COLLAPSED, GOOD_AFTER, fake_run
from unlearning.data import bundled_dataset
from unlearning.models import tiny_model
from unlearning.runs import RunStore


@pytest.fixture(scope="session")
def tiny():
    """A random 2-layer Llama on the real tokenizer; tests never change it (the engine trains copies)."""
    return tiny_model()


@pytest.fixture(scope="session")
def bundled():
    return bundled_dataset()


@pytest.fixture
def store(tmp_path):
    """A run store holding two finished runs: one that forgot well ("good") and one that collapsed ("broken")."""
    store = RunStore(tmp_path / "runs")
    fake_run(store, "good", "npo", GOOD_AFTER)
    fake_run(store, "broken", "grad_ascent", COLLAPSED)
    return store


@pytest.fixture(scope="session")
def chromium():
    """One headless chromium for every browser test: each module opens its own contexts in it (a launch costs seconds,
    and Playwright's sync API allows one instance at a time)."""
    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS  # skips the test where chromium is missing
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def tiny_app(tmp_path_factory):
    """One `python -m app --model tiny` over a fresh runs folder for the browser tests of the plain studio (a start
    takes 10-20 s): yields its URL and runs folder. Tests that read the runs folder tell their own runs apart."""
    from tests.test_browser import running_app

    runs = tmp_path_factory.mktemp("runs")
    with running_app(runs, tmp_path_factory.mktemp("log") / "app.log") as url:
        yield url, runs
