import pytest

from unlearning.data import bundled_dataset
from unlearning.models import tiny_model


@pytest.fixture(scope="session")
def tiny():
    """A random 2-layer Llama on the real tokenizer; tests never change it (the engine trains copies)."""
    return tiny_model()


@pytest.fixture(scope="session")
def bundled():
    return bundled_dataset()
