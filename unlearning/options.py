"""Options: each config field carries its help, choices and bounds; one function checks a value against them.

TrainConfig, EvalConfig and every method's Config declare their knobs with `option(...)`. The run plan checks raw
values (text from a command line, floats from a number box) with `parse`, the CLI builds its flags and the app its
controls from `options(cls)`, and `check` runs in each config's __post_init__: a default, a bound or a help text is
written once, where the field is.
"""
from __future__ import annotations

import functools
import math
import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Mapping

KINDS = (bool, int, float, str)  # what an option may be: the JSON scalars, so every config stays plain JSON


def option(default: Any, help: str, *, choices: Mapping[str, str] | tuple[str, ...] | None = None,
           ge: float | None = None, gt: float | None = None, le: float | None = None, label: str | None = None,
           advanced: bool = False, when: tuple[str, Any] | None = None, flags: tuple[str, ...] = (),
           group: str | None = None) -> Any:
    """A dataclass field that is a user-facing option.

    choices: allowed values (a dict maps each to the label a picker shows); ge / gt / le: bounds; label: the name a
    person reads (default: the field name with spaces); advanced: tucked away in the app; when=(other, value): only
    matters when option `other` has that value; flags: its command-line spellings where they are not --name (e.g.
    "--learning-rate", "--lr"); group: a heading
    the app gathers related options under.
    """
    metadata = {"help": help, "choices": choices, "ge": ge, "gt": gt, "le": le, "label": label, "advanced": advanced,
                "when": when, "flags": flags, "group": group}
    return field(default=default, metadata={k: v for k, v in metadata.items() if v is not None and v is not False and v != ()})


@dataclass(frozen=True)
class Option:
    name: str
    kind: type  # bool | int | float | str
    default: Any
    help: str
    label: str
    choices: dict[str, str]  # value -> label; empty when any value of the kind goes
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    advanced: bool = False
    when: tuple[str, Any] | None = None
    flags: tuple[str, ...] = ()
    group: str = ""

    def bounds(self) -> str:
        parts = [(">=", self.ge), (">", self.gt), ("<=", self.le)]
        return " and ".join(f"{sign} {_plain(value)}" for sign, value in parts if value is not None)


def _plain(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@functools.cache
def options(cls: type) -> tuple[Option, ...]:
    """The options of a config dataclass, in field order (fields declared without `option` are not options)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        meta = f.metadata
        if "help" not in meta:
            continue
        kind = hints[f.name]
        if kind not in KINDS:
            raise TypeError(f"option {cls.__name__}.{f.name} must be one of {[k.__name__ for k in KINDS]}, not {kind}")
        choices = meta.get("choices") or {}
        out.append(Option(
            name=f.name, kind=kind, default=f.default if f.default is not MISSING else None, help=meta["help"],
            label=meta.get("label", f.name.replace("_", " ")),
            choices=dict(choices) if isinstance(choices, Mapping) else {c: c for c in choices},
            ge=meta.get("ge"), gt=meta.get("gt"), le=meta.get("le"), advanced=meta.get("advanced", False),
            when=meta.get("when"), flags=tuple(meta.get("flags", ())), group=meta.get("group", ""),
        ))
    return tuple(out)


def coerce(opt: Option, value: Any) -> Any:
    """`value` as the option's kind, or ValueError saying why not. Text is read as a person would type it ("3e-5",
    "true"); a float that is a whole number may fill an int; NaN and infinities are refused (configs are JSON)."""
    name = opt.name.replace("_", " ")  # as the CLI flag and the config key say it
    if opt.kind is bool:
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false (got {value!r})")
        return value
    if opt.kind is str:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be text (got {value!r})")
        if opt.choices and value not in opt.choices:
            raise ValueError(f"{name} must be one of {', '.join(map(repr, opt.choices))} (got {value!r})")
        return value
    number = _number(value)
    if number is None:
        raise ValueError(f"{name} must be {'a whole number' if opt.kind is int else 'a number'} (got {value!r})")
    if not finite_number(number):  # NaN and infinities are not JSON: a config holding one could not be read back
        raise ValueError(f"{name} must be a finite number (got {value!r})")
    if opt.kind is int:
        if number != int(number):
            raise ValueError(f"{name} must be a whole number (got {value!r})")
        number = int(number)
    else:
        number = float(number)
    if (opt.ge is not None and number < opt.ge) or (opt.gt is not None and number <= opt.gt) or (
            opt.le is not None and number > opt.le):
        raise ValueError(f"{name} must be {opt.bounds()} (got {value!r})")
    return number


def finite_number(value: Any) -> bool:
    """Whether a JSON value is a number every reader can use: not a bool, not NaN or infinite, and (an int) small
    enough to become a float (json reads 10**400 as an int, which float(), math and formatting refuse)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        for read in (int, float):
            try:
                return read(value.strip())
            except ValueError:
                pass
    return None


def parse(cls: type, values: Any, where: str = "") -> tuple[dict, list[str]]:
    """Check raw values for the options of `cls`: (the values as their kinds, readable problems).

    Unknown names are problems; missing ones keep their defaults (they are left out of the result).
    """
    prefix = f"{where}: " if where else ""
    if not isinstance(values, Mapping):
        return {}, [f"{prefix}expected a set of options, got {type(values).__name__}"]
    known = {o.name: o for o in options(cls)}
    out, problems = {}, []
    for key, value in values.items():
        if key not in known:
            problems.append(f"{prefix}unknown option {key!r}; the options are {', '.join(known) or 'none'}")
            continue
        try:
            out[key] = coerce(known[key], value)
        except ValueError as error:
            problems.append(f"{prefix}{error}")
    return out, problems


def check(config: Any) -> None:
    """For __post_init__: every option of `config` as its kind and within bounds (converted in place), else
    ValueError listing each problem."""
    problems = []
    for opt in options(type(config)):
        try:
            object.__setattr__(config, opt.name, coerce(opt, getattr(config, opt.name)))
        except ValueError as error:
            problems.append(str(error))
    if problems:
        raise ValueError("; ".join(problems))
