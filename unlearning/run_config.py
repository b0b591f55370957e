"""A run's configuration (config.json): its schema, and the parsing that checks every value a request or a file holds.

The CLI, the app (through unlearning.plan) and the run store's readers all go through parse_run_config, so a value is
checked the same way whether it is typed, clicked or read back from disk.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from unlearning.engine import TrainConfig
from unlearning.evaluation.report import EvalConfig
from unlearning.methods import METHODS
from unlearning.options import parse


@dataclass
class RunConfig:
    model: str = "default"  # anything load_model accepts, e.g. a prepared target's folder
    data: str = "bundled"  # anything load_data accepts
    forget_ids: list[str] = field(default_factory=list)
    retain_ids: list[str] | None = None  # None: the retain split, less any sample chosen to forget
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    save_weights: bool = False
    name: str = ""
    sweep: str = ""  # the sweep this run is a point of (unlearning.sweep), "" for a run of its own

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> "RunConfig":
        config, problems = parse_run_config(data)
        if problems:
            raise ValueError("; ".join(problems))
        return config


def parse_run_config(data: Any) -> tuple[RunConfig | None, list[str]]:
    """A RunConfig from its dict form (config.json, or a request from the CLI or the app), with every value checked
    against its option's kind and bounds; or None and the problems, each in words a user can act on."""
    if not isinstance(data, dict):
        return None, [f"expected a JSON object, got {json_type(data)}"]
    problems = [f"unknown setting {key!r}" for key in data if key not in RunConfig.__dataclass_fields__]
    top = {}
    for key, ok, what in (("model", _text, "text"), ("data", _text, "text"), ("name", _short_text, "text of up to 200 characters"),
                          ("sweep", _short_text, "text of up to 200 characters"),
                          ("forget_ids", _ids, "a list of record ids"), ("save_weights", _bool, "true or false")):
        if key in data:
            if ok(data[key]):
                top[key] = data[key]
            else:
                problems.append(f"{key.replace('_', ' ')} must be {what} (got {shorten(data[key])})")
    if data.get("retain_ids") is not None:
        if _ids(data["retain_ids"]):
            top["retain_ids"] = data["retain_ids"]
        else:
            problems.append(f"retain ids must be a list of record ids or null (got {shorten(data['retain_ids'])})")
    train = data.get("train", {})
    if not isinstance(train, dict):
        problems.append(f"train: expected a set of options, got {json_type(train)}")
        train = {}
    method = train.get("method", TrainConfig.method)
    method_cls = METHODS.get(method) if isinstance(method, str) else None
    if method_cls is None:
        problems.append(f"unknown method {method!r}; choose one of: {', '.join(sorted(METHODS))}")
    method_options, found = parse(method_cls.Config, train.get("method_options", {}), f"{method} option") if method_cls else ({}, [])
    train_options, found_train = parse(TrainConfig, {k: v for k, v in train.items() if k not in ("method", "method_options")})
    evaluation = data.get("eval", {})
    if isinstance(evaluation, dict) and evaluation.get("utility") == "probe":  # runs saved before the bundled items
        evaluation = {**evaluation, "utility": "items"}
    eval_options, found_eval = parse(EvalConfig, evaluation, "evaluation")
    problems += found + found_train + found_eval
    if problems:
        return None, problems
    try:  # the option checks passed; this fills defaults and applies the method's own rules
        options = asdict(method_cls.Config(**method_options))
        train_config = TrainConfig(method=method, method_options=options, **train_options)
        return RunConfig(**top, train=train_config, eval=EvalConfig(**eval_options)), []
    except (ValueError, TypeError) as error:
        return None, [str(error)]


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _short_text(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 200


def _ids(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(i, str) for i in value)


def _bool(value: Any) -> bool:
    return isinstance(value, bool)


def json_type(value: Any) -> str:
    """What kind of JSON value a bad one is, in words."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}
    return names.get(type(value), "a number")


def shorten(value: Any) -> str:
    """A bad value quoted in a message, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
