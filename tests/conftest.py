import gc
import os
from pathlib import Path

import pytest
import torch

from tests.fake_runs import COLLAPSED, GOOD_AFTER, fake_run
from unlearning.data import bundled_dataset
from unlearning.models import tiny_model
from unlearning.runs import RunStore


WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))  # `make test` runs pytest-xdist's workers
if WORKERS > 1:
    # Each worker takes its share of the cores, or two workers with two threads each fight over two cores; the apps
    # and CLIs the tests start inherit it.
    THREADS = max(1, (os.cpu_count() or 1) // WORKERS)
    torch.set_num_threads(THREADS)
    os.environ["OMP_NUM_THREADS"] = str(THREADS)


def _work_unit(nodeid: str) -> str:
    """What one xdist worker runs whole (`make test`): a test module, so its module fixtures are made once and its
    tests run in order; or every browser test (tests/test_browser*.py), which share one chromium and one app and miss
    their timeouts when two of them share the cores."""
    module = nodeid.split("::")[0]
    return "browser" if Path(module).name.startswith("test_browser") else module


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(nodeid)

    return ByWorkUnit(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The browser tests first (with --no-loadscope-reorder xdist deals work units in this order): the longest unit
    starts at once on one worker while the others take the rest."""
    items.sort(key=lambda item: _work_unit(item.nodeid) != "browser")  # stable: the rest keep their order


def pytest_collection_finish(session: pytest.Session) -> None:
    """Every object alive once the tests are collected (torch, transformers, gradio, the test modules) is moved out
    of the garbage collector's sight: each training run's full collection (Accelerate's free_memory) then scans only
    what the tests made since, not half a million objects (test_prefix.py: 44 s -> 23 s)."""
    gc.collect()
    gc.freeze()


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
