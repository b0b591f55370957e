"""One request -> one checked run plan: every rule about what a run may be, in one place.

The app's Run tab and the CLI's `run` both build a request (a dict shaped like config.json, with values as they
come: text from a command line, floats from a number box) and call `make_plan`. It answers a Plan that the
engine and the experiment trust, or raises PlanError listing every problem in words a user can act on. Nothing
is created or written on the way; the data and the model are loaded (and cached) to check ids and layers.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from unlearning.batching import cut_note, sample_length
from unlearning.data import DataError, UnlearningData, cached_data
from unlearning.data.records import Record
from unlearning.engine import cpp_compiler
from unlearning.evaluation.report import EvalConfig
from unlearning.methods import METHODS, get_method
from unlearning.models import ModelLoadError, cached_model, decoder_layers
from unlearning.options import Option, coerce
from unlearning.run_config import RunConfig, parse_run_config

SHOWN_IDS = 5  # ids quoted in a message; the rest are counted
# A request may give a count instead of forget ids (the CLI's --forget-n): that many samples of the forget split,
# drawn with the run's seed; the plan records the ids drawn.
FORGET_N = Option("forget_n", int, None, "Forget N random samples of the forget split.", "forget n", {}, ge=1)
FORGET_KIND = Option("forget_kind", str, None, "Draw only completions (sc) or questions (qa).", "forget kind",
                     {"sc": "completions", "qa": "questions"})


class PlanError(ValueError):
    """A request that cannot run; `problems` lists each reason (str(error) joins them)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class Selection:
    forget: list[Record]
    retain: list[Record]  # trained on (the retain term)
    retain_eval: list[Record]  # evaluated before and after: a fixed sample (fast) or all of them (official)
    mia_members: list[str]
    mia_nonmembers: list[str]
    mia_source: str  # what the members are, shown next to every MIA number
    notes: dict[str, str]  # how this selection departs from the official protocol
    holdout: list[Record]  # never trained on: the level a forgotten sample should fall to


def selection(data: UnlearningData, forget: list[Record], retain: list[Record], evaluation: EvalConfig) -> Selection:
    """The records of a run: what it trains on, the retain rows it is scored on, and the MIA documents.

    MIA members: in official mode the data's own member documents (LUME's files; for other data, its forget split's
    documents built as the official files are); in fast mode the selected forget samples' documents, since those are
    what this run unlearns. Non-members are always the data's (LUME's files, else its holdout documents).
    """
    retain_eval = sorted(retain, key=lambda r: r.id)
    if evaluation.retain_rows:
        retain_eval = random.Random(0).sample(retain_eval, min(evaluation.retain_rows, len(retain_eval)))
    notes = {}
    if evaluation.mode == "official":
        members, source = data.mia_members, data.mia_source
        if not data.mia_official:
            notes["mia"] = f"the data has no member/non-member files: MIA documents {data.mia_source}"
    else:
        members = [r.text for r in forget]
        source = f"the {len(forget)} selected forget samples, each as input + ' ' + output"
    return Selection(forget, retain, retain_eval, members, data.mia_nonmembers, source, notes, data.split("holdout"))


@dataclass
class Plan:
    config: RunConfig  # what runs and what config.json records (defaults filled in, adjustments applied)
    selection: Selection  # the records it trains on and is evaluated on, resolved from the data
    notes: list[str] = field(default_factory=list)  # adjustments made to the request, for the user to read


def _ids(ids: list[str]) -> str:
    shown = ", ".join(ids[:SHOWN_IDS])
    return shown + (f" and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else "")


def make_plan(request: Mapping[str, Any] | RunConfig) -> Plan:
    """Check a run request and resolve it into a Plan, or raise PlanError with every problem found.

    The rules: options of the right kind and within their bounds (no NaN or infinity: configs are plain JSON), a
    known method whose options fit it; at least one forget sample, ids that exist in the data and are not listed
    twice; the retain set is the given ids, or else the retain split less any sample chosen to forget, never
    overlapping the forget set, and not empty for a method that trains on it; a batch no larger than the forget
    set (lowered, with a note); trained layers and steered layers that the model has; a C++ compiler for compile.
    A max length beyond the model's context is lowered to it, and the samples longer than it are counted in a note.
    A forget count (forget_n, optionally of one forget_kind) instead of ids: a whole number >= 1, noted when the
    forget split has fewer.
    """
    request = request.to_dict() if isinstance(request, RunConfig) else dict(request)
    draw = {o.name: request.pop(o.name, None) for o in (FORGET_N, FORGET_KIND)}
    config, problems = parse_run_config(request)
    for opt in (FORGET_N, FORGET_KIND):
        try:
            draw[opt.name] = None if draw[opt.name] is None else coerce(opt, draw[opt.name])
        except ValueError as error:
            problems.append(str(error))
    if config is not None and config.forget_ids and draw["forget_n"] is not None:
        problems.append("give forget ids or a forget count (forget n), not both")
    if problems:
        raise PlanError(problems)
    notes: list[str] = []
    try:
        data = cached_data(config.data)
    except (DataError, OSError, ValueError) as error:
        raise PlanError([f"the data {config.data!r} did not load: {error}"]) from error
    index = {r.id: r for r in data.records}
    if draw["forget_n"] is not None:
        config = replace(config, forget_ids=data.sample_forget(draw["forget_n"], config.train.seed, draw["forget_kind"]))
        if len(config.forget_ids) < draw["forget_n"]:
            samples = FORGET_KIND.choices[draw["forget_kind"]] if draw["forget_kind"] else "samples"
            notes.append(f"There are only {len(config.forget_ids)} forget {samples}: all {len(config.forget_ids)} are "
                         f"forgotten ({draw['forget_n']} were asked for).")

    forget_ids = config.forget_ids
    if not forget_ids:
        problems.append("No forget samples selected: pick at least one sample to forget (in the app, tick some in "
                        "the Data tab or use a shortcut there).")
    for name, ids in (("forget", forget_ids), ("retain", config.retain_ids or [])):
        twice = [i for i, n in Counter(ids).items() if n > 1]
        if twice:
            problems.append(f"{name} ids listed more than once: {_ids(twice)}")
        unknown = list(dict.fromkeys(i for i in ids if i not in index))
        if unknown:
            problems.append(f"{len(unknown)} {name} id(s) are not in {data.name}: {_ids(unknown)}")
    chosen = set(forget_ids)
    if config.retain_ids is None:
        retain = data.retain_set(forget_ids)
        moved = len(data.split("retain")) - len(retain)
        if moved:
            notes.append(f"{moved} sample(s) to forget come from the retain split: they are left out of the retain set.")
    else:
        retain = [index[i] for i in dict.fromkeys(config.retain_ids) if i in index]
        overlap = sorted(chosen & set(config.retain_ids))
        if overlap:
            problems.append(f"{len(overlap)} sample(s) are in both the forget and the retain set: {_ids(overlap)}")
    method = get_method(config.train.method, **config.train.method_options)
    if not method.unlearns:
        unlearning = sorted(m for m, c in METHODS.items() if c.unlearns)
        problems.append(f"{method.name} ({method.title}) is not an unlearning method: it is how prepare-target memorises "
                        f"data; choose one of: {', '.join(unlearning)}")
    if "retain" in method.views and not retain:
        problems.append(f"{method.title} needs retain samples, and the retain set is empty")
    if config.train.compile and not cpp_compiler():
        problems.append("compile needs a C++ compiler (g++ or $CXX) for torch.compile; install one or turn compile off")

    try:
        loaded = cached_model(config.model)
        model = loaded.model
    except (ModelLoadError, OSError, ValueError) as error:
        problems.append(str(error))
    else:
        problems += method.problems(model, config.train)
        if config.train.params == "last_k":
            try:
                layers = len(decoder_layers(model))
            except ValueError as error:
                problems.append(f"training only the last k layers needs a model whose layers can be found: {error}")
            else:
                if config.train.last_k > layers:
                    problems.append(f"k = {config.train.last_k} last layers to train, but the model has only {layers}")
    if problems:
        raise PlanError(problems)

    # a sample picked from another split is forgotten by this run: every report and verdict must count it as forget
    forget = [index[i] if index[i].split == "forget" else replace(index[i], split="forget") for i in forget_ids]
    if config.train.batch_size > len(forget):  # a batch cannot hold more samples than there are
        notes.append(f"The batch size is lowered to {len(forget)}: there are only {len(forget)} forget samples.")
        config = replace(config, train=replace(config.train, batch_size=len(forget)))
    length = sample_length(model, config.train.max_length)
    if length < config.train.max_length:
        notes.append(f"The max length is lowered to {length} tokens: the model's context.")
        config = replace(config, train=replace(config.train, max_length=length))
    cut = cut_note(loaded.tokenizer, forget + retain, length)
    if cut:
        notes.append(f"Training and in-run scores: {cut}")
    return Plan(config, selection(data, forget, retain, config.eval), notes)
