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
