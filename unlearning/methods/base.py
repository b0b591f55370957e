"""What a method is: a config dataclass, one loss function, and (rarely) its own batch schedule or final step.

The engine owns everything else (optimiser, precision, trainable parameters, logging, cancellation), so a method
module is only its loss: like TRL's small trainers, "the only change is the loss".
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar, Iterator, Sequence

import torch
from transformers import PreTrainedModel

from unlearning.batching import Batch
from unlearning.data.records import Record
from unlearning.options import check

METHODS: dict[str, type["Method"]] = {}


def register(cls: type["Method"]) -> type["Method"]:
    """Class decorator: a method module registers itself, so the UI and CLI list it with no edits elsewhere."""
    METHODS[cls.name] = cls
    cls.presets = cls.__dict__.get("presets", ())  # a recipe is tested on one method: subclasses do not inherit it
    return cls


def get_method(name: str, **options) -> "Method":
    if name not in METHODS:
        raise ValueError(f"Unknown method {name!r}; choose one of: {', '.join(sorted(METHODS))}")
    cls = METHODS[name]
    known = {f.name for f in fields(cls.Config)}
    unknown = set(options) - known
    if unknown:
        raise ValueError(f"Method {name!r} has no option(s) {sorted(unknown)}; it takes {sorted(known)}")
    return cls(cls.Config(**options))


def get_preset(method: str, name: str) -> "Preset":
    """A method's preset by name, or ValueError naming the ones it has."""
    presets = {p.name: p for p in METHODS[method].presets} if method in METHODS else {}
    if name not in presets:
        raise ValueError(f"{method!r} has no preset {name!r}; its presets: {', '.join(presets) or 'none'}")
    return presets[name]


@dataclass(frozen=True)
class Preset:
    """A tested recipe for a method: training settings and the method's options, and where its figures come from."""

    name: str
    why: str  # one sentence: what it does and the measurement or paper behind it
    train: dict  # TrainConfig options (learning_rate, steps, params, last_k, score_every, skip_forgotten, ...)
    options: dict  # the method's own options


@dataclass
class MethodConfig:
    """Hyperparameters of the loss itself; steps, learning rate and batch size belong to the engine.

    Fields are declared with unlearning.options.option (help, choices, bounds): the CLI's --set, the app's controls
    and the run plan all read them from there.
    """

    def __post_init__(self) -> None:
        check(self)


class Method:
    name: ClassVar[str]
    title: ClassVar[str]
    formula: ClassVar[str]  # Markdown with LaTeX, shown in the method picker
    intuition: ClassVar[str]  # one paragraph for the method picker
    paper: ClassVar[str]
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    needs_reference: ClassVar[bool] = False  # the engine passes the frozen original model as `reference`
    views: ClassVar[tuple[str, ...]] = ("forget", "retain")  # batches the loss reads, built by `view_pairs`
    unlearns: ClassVar[bool] = True  # False for plain fine-tuning, which the pickers leave out
    presets: ClassVar[tuple[Preset, ...]] = ()  # tested recipes: the app's preset picker and the CLI's --preset

    def __init__(self, config: MethodConfig) -> None:
        self.config = config

    def loss(
        self, model: PreTrainedModel, batch: dict[str, Batch], reference: PreTrainedModel | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Return the loss to minimise and its terms for logging; terms include forget_nll and retain_nll."""
        raise NotImplementedError

    def view_pairs(self, view: str, forget: list[Record], retain: list[Record]) -> list[tuple[str, str]]:
        """(prompt, answer) pairs of one view; a method that trains on other answers (refusals) overrides this."""
        records = retain if view == "retain" else forget
        return [(r.input, r.output) for r in records]

    def schedule(self, n_forget: int, n_retain: int, steps: int, batch_size: int, generator: torch.Generator,
                 lengths: Sequence[int] = ()) -> Iterator[tuple[list[int], list[int]]]:
        """Indices of the forget and retain samples of each step; by default independent random batches. `lengths`: the
        forget samples' token counts, for a schedule that batches samples of similar length."""
        for _ in range(steps):
            yield _sample(n_forget, batch_size, generator), _sample(n_retain, batch_size, generator)

    def finish(self, model: PreTrainedModel, initial: dict[str, torch.Tensor]) -> None:
        """Edit the trained weights once training ends; `initial` holds trainable parameters before step 1."""

    def problems(self, model: PreTrainedModel, config) -> list[str]:
        """What stops this method's options from fitting `model` and the training setup (an engine.TrainConfig), e.g. a
        layer it lacks or one that cannot train; the run plan reports them before anything is created."""
        return []


def _sample(n: int, k: int, generator: torch.Generator) -> list[int]:
    if n == 0:
        return []
    return torch.randperm(n, generator=generator)[: min(k, n)].tolist()
