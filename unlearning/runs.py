"""The run store: every run on disk, its config, per-step metrics, before/after evaluations and optional weights.

runs/<run id>/
    config.json     the RunConfig, enough to reproduce the run
    status.json     queued | running | completed | cancelled | diverged | failed | interrupted, a message that follows
                    the run's stage, and the process that owns it while it is active (pid, host, start time)
    metrics.jsonl   one line per training step (appended, so a crash keeps the curve so far)
    before.json     EvalReport of the original model
    after.json      EvalReport of the unlearned model
    model/, adapter.safetensors   optional weights
    probes.json     what the probes found (unlearning.probes), one entry per probe: options, date, wall time, result

What the store guarantees (the README repeats it):
- A file is written whole or not at all (a temporary name, then a rename); the temporary goes on any failure.
- A run folder appears with its config and status, or not at all; saved weights appear only once complete.
- Everything written is standard JSON: NaN and infinities are stored as null, and read back.
- Readers never fail on a run's files, whatever value any field holds: a damaged file (or a finished run without its
  evaluations) makes its run read as "damaged" with the file and the reason, and everything else of that run that can
  still be read; a bad metrics line is skipped and counted; no other run is affected.
- An active run whose owning process is gone reads as "interrupted" for every reader, in any process.

The config's schema is unlearning.run_config, whole files unlearning.atomic, owners unlearning.liveness.
"""
from __future__ import annotations

import errno
import json
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unlearning.atomic import append_line, atomic_path, overwrite_in_place, to_json, write_atomic
from unlearning.evaluation.report import EvalReport, number_or_null, number_table
from unlearning.liveness import owner_alive, this_process
from unlearning.options import finite_number
from unlearning.run_config import RunConfig, json_type, parse_run_config, shorten

ACTIVE = ("queued", "running")
EVALUATED = ("completed", "stopped")  # how a run ends that has both its evaluations
STATUSES = ACTIVE + ("completed", "stopped", "cancelled", "diverged", "failed", "interrupted")
_RUN_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{8}$")
MESSAGE_CHARS = 1000  # a status stays well inside one disk block, so a full disk can still take the last one


def report_problem(data: Any) -> str | None:
    """Why a before.json / after.json cannot be shown, or None; the evaluation's own reader does the checking."""
    try:
        EvalReport.from_dict(data)
    except ValueError as error:
        return str(error)
    return None


def status_problem(data: Any) -> str | None:
    if not isinstance(data, dict):
        return f"expected a JSON object, got {json_type(data)}"
    if data.get("status") not in STATUSES:
        return f"unknown status {shorten(data.get('status'))}"
    if not isinstance(data.get("message", ""), str):
        return "its message is not text"
    return None


def config_problem(data: Any) -> str | None:
    problems = parse_run_config(data)[1]
    return "; ".join(problems) if problems else None


def probe_entry_whole(entry: Any) -> bool:
    """Whether one saved probe has the shape every reader relies on (unlearning.probes writes it), every part of its
    result a reader reads included."""
    if not isinstance(entry, dict) or not isinstance(entry.get("result"), dict):
        return False
    result = entry["result"]
    return (all(ok(result[part]) for part, ok in PROBE_RESULT.items() if part in result)
            and all(isinstance(entry.get(k, ""), str) for k in ("title", "asks", "date"))
            and finite_number(entry.get("seconds", 0)))


def _headline(head: Any) -> bool:
    return (isinstance(head, dict) and number_or_null(head.get("value"))
            and all(isinstance(head.get(k, ""), str) for k in ("status", "text", "unit")))


def _bar(bar: Any) -> bool:
    return (isinstance(bar, dict) and isinstance(bar.get("title", ""), str) and number_table(bar.get("probed"))
            and number_table(bar.get("recovery", {}))
            and all(number_or_null(bar.get(k)) for k in ("original", "unlearned")))


def _points(value: Any) -> bool:
    """A relearning curve's points: each a step and both halves' exact memorization (null: not measured)."""
    return value is None or isinstance(value, list) and all(
        isinstance(p, dict) and finite_number(p.get("step")) and "held_out_em" in p and "trained_em" in p
        and number_or_null(p["held_out_em"]) and number_or_null(p["trained_em"]) for p in value)


def _curve(curve: Any) -> bool:
    if not isinstance(curve, dict):
        return False
    reference = curve.get("reference")
    return (_points(curve.get("unlearned")) and _points(curve.get("control"))
            and (reference is None or isinstance(reference, dict) and number_or_null(reference.get("original"))))


# The parts of a probe's result that readers read, and the shape each must have.
PROBE_RESULT = {"headline": _headline, "bars": lambda v: isinstance(v, dict) and all(map(_bar, v.values())),
                "curve": _curve, "tradeoff": lambda v: v is None or number_table(v),
                "report": lambda v: report_problem(v) is None}


# Each JSON file of a run and the check its content must pass (None: whole).
CHECKS = {"config.json": config_problem, "status.json": status_problem, "before.json": report_problem,
          "after.json": report_problem}


def check_run_id(run_id: str) -> str:
    """Run ids come from the UI and the CLI: refuse anything that is not exactly our format (no paths)."""
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
        raise ValueError(f"not a run id: {run_id!r}")
    return run_id


# ------------------------------------------------------------------------------------------------------- the store


@dataclass
class Run:
    """One run as readers see it: whatever could be read, and what could not (one problem per damaged file)."""

    id: str
    config: RunConfig | None
    status: dict  # status, message (and created, updated, owner); "damaged" when any file is, "interrupted" when orphaned
    steps: list[dict]
    before: dict | None
    after: dict | None
    problems: list[str]

    @property
    def damaged(self) -> bool:
        return bool(self.problems)


class DamagedRun(ValueError):
    """A run whose files cannot be read as needed; the message names the file and what is wrong with it."""


class RunStore:
    def __init__(self, root: str | Path = "runs") -> None:
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as error:  # bad input, not a failure: say it in words
            raise ValueError(f"the runs folder {str(root)!r} is not a folder: a file is in the way") from error

    def path(self, run_id: str) -> Path:
        return self.root / check_run_id(run_id)

    # ------------------------------------------------------------------------------------------------- writing

    def create(self, config: RunConfig) -> str:
        """A new run, queued and owned by this process. Built in a hidden folder and renamed, so a failure (a full
        disk) leaves no empty or half-made run behind."""
        # Time-ordered for listing, plus 32 random bits so ids cannot be guessed or collide.
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(4)
        with atomic_path(self.path(run_id)) as folder:
            folder.mkdir()
            write_atomic(folder / "config.json", to_json(config.to_dict()))
            now = time.time()
            status = {"status": "queued", "message": "", "created": now, "updated": now, "owner": this_process()}
            write_atomic(folder / "status.json", to_json(status))
        return run_id

    def write_json(self, run_id: str, name: str, data: dict) -> None:
        write_atomic(self.path(run_id) / name, to_json(data))

    def set_status(self, run_id: str, status: str, message: str = "", **extra) -> None:
        previous, _ = self._load(run_id, "status.json")
        data = {**(previous or {"created": time.time()}), **extra, "status": status,
                "message": message[:MESSAGE_CHARS], "updated": time.time()}
        if status in ACTIVE:
            data["owner"] = this_process()
        text = to_json(data)
        file = self.path(run_id) / "status.json"
        try:
            write_atomic(file, text)
        except OSError as error:
            if error.errno != errno.ENOSPC or not file.exists():
                raise
            # The disk is full: a new file cannot be made, but the old one's block can be overwritten, so the
            # next reader still learns how the run ended (a crash right now would leave it damaged, and say so).
            overwrite_in_place(file, text)

    def append_step(self, run_id: str, log: dict) -> None:
        append_line(self.path(run_id) / "metrics.jsonl", log)

    def delete(self, run_id: str) -> None:
        """Delete a run (damaged ones too); a run still in progress in a live process is refused."""
        status = self.status(run_id)
        if status["status"] in ACTIVE:
            raise ValueError(f"run {run_id} is {status['status']}: stop it before deleting it")
        shutil.rmtree(self.path(run_id))

    def recover(self) -> list[str]:
        """Write down what readers already see: active runs whose process is gone become interrupted. Runs of
        live processes (a CLI run, a second app) are left alone."""
        cut = []
        for run_id in self.ids():
            stored, problem = self._load(run_id, "status.json")
            if problem is None and stored and stored["status"] in ACTIVE and not owner_alive(stored.get("owner")):
                self.set_status(run_id, "interrupted", self._orphaned(stored)["message"])
                cut.append(run_id)
        return cut

    # ------------------------------------------------------------------------------------------------- reading

    def ids(self) -> list[str]:
        """All runs, newest first; folders that are not runs (and runs being created) are ignored."""
        return sorted((p.name for p in self.root.iterdir() if _RUN_ID.match(p.name) and p.is_dir()), reverse=True)

    def _load(self, run_id: str, name: str, check: bool = True) -> tuple[Any, str | None]:
        """(content, None), (None, None) when the file does not exist, or (None, "<file>: <what is wrong>").
        With check=False the content is only parsed, not checked for shape."""
        file = self.path(run_id) / name
        try:
            raw = file.read_bytes()
        except FileNotFoundError:
            return None, None
        except OSError as error:
            return None, f"{name}: cannot be read ({error.strerror or error})"
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return None, f"{name}: not text (binary data)"
        except json.JSONDecodeError as error:
            what = "empty" if not raw.strip() else f"not valid JSON ({error.msg} at line {error.lineno}; cut off?)"
            return None, f"{name}: {what}"
        except ValueError as error:  # valid JSON Python will not read: an integer of more than 4300 digits
            return None, f"{name}: cannot be read ({error})"
        except RecursionError:
            return None, f"{name}: nested too deeply to read"
        problem = CHECKS[name](data) if check and name in CHECKS else None
        return (None, f"{name}: {problem}") if problem else (data, None)

    def read_json(self, run_id: str, name: str) -> dict | None:
        """A run file's content, or None when it is missing or damaged (`read` says what is wrong)."""
        return self._load(run_id, name)[0]

    def config(self, run_id: str) -> RunConfig:
        """The run's configuration; DamagedRun when config.json is missing or damaged."""
        config, problem = self._config(run_id)
        if config is None:
            raise DamagedRun(f"run {run_id} cannot be read: {problem}")
        return config

    def _config(self, run_id: str) -> tuple[RunConfig | None, str | None]:
        data, problem = self._load(run_id, "config.json", check=False)
        if data is None:
            return None, problem or "config.json is missing"
        config, problems = parse_run_config(data)
        return config, "config.json: " + "; ".join(problems) if problems else None

    def status(self, run_id: str) -> dict:
        """status.json as every reader should see it: an active run whose process is gone is "interrupted", and a
        damaged or missing status.json is "damaged" with the reason. Never raises for a run's content."""
        data, problem = self._load(run_id, "status.json")
        if data is None:
            return {"status": "damaged", "message": problem or "status.json is missing"}
        if data["status"] in ACTIVE and not owner_alive(data.get("owner")):
            return self._orphaned(data)
        return data

    @staticmethod
    def _orphaned(data: dict) -> dict:
        owner = data.get("owner") if isinstance(data.get("owner"), dict) else {}
        who = f"its process (pid {owner['pid']} on {owner.get('host')})" if "pid" in owner else "the process running it"
        last = f"; last stage: {data['message']}" if data.get("message") else ""
        return {**data, "status": "interrupted", "message": f"{who} stopped while it was {data['status']}{last}"}

    def steps(self, run_id: str) -> list[dict]:
        return self._steps(run_id)[0]

    def _steps(self, run_id: str) -> tuple[list[dict], str | None]:
        """Every logged step that reads; a line that does not is skipped and counted (the steps after it stay). A last
        line without its newline is a write cut off by a crash, not damage: it is kept when it reads, else dropped."""
        file = self.path(run_id) / "metrics.jsonl"
        try:
            raw = file.read_bytes()
        except FileNotFoundError:
            return [], None
        except OSError as error:
            return [], f"metrics.jsonl: cannot be read ({error.strerror or error})"
        *lines, tail = raw.split(b"\n")
        logs, skipped = [], []
        for number, line in enumerate([*lines, tail], start=1):
            if not line.strip():
                continue
            try:
                log = json.loads(line.decode("utf-8"))
                whole = isinstance(log, dict) and isinstance(log.get("step"), int) and not isinstance(log["step"], bool)
            except (ValueError, RecursionError):
                whole = False
            if whole:
                logs.append(log)
            elif number <= len(lines):  # not the cut-off last line
                skipped.append(number)
        if not skipped:
            return logs, None
        shown = ", ".join(map(str, skipped[:5])) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        return logs, f"metrics.jsonl: {len(skipped)} line(s) are not step records and were skipped (line{'s' * (len(skipped) > 1)} {shown})"

    def probes(self, run_id: str) -> dict[str, dict]:
        """The probes run on this run, by probe name (the latest result of each); {} when there are none or
        probes.json cannot be read, so a damaged probe file shows as "not probed", never as a failure."""
        data, _ = self._load(run_id, "probes.json")
        return {name: entry for name, entry in data.items() if probe_entry_whole(entry)} if isinstance(data, dict) else {}

    def save_probe(self, run_id: str, name: str, entry: dict) -> None:
        self.write_json(run_id, "probes.json", {**self.probes(run_id), name: entry})

    def read(self, run_id: str) -> Run:
        """Everything of one run that can be read, and a problem for each file that cannot. Never raises for a
        run's content; a damaged run's status is "damaged" and its message lists the problems."""
        if not self.path(run_id).is_dir():
            raise ValueError(f"no run {run_id} in {self.root}")
        config, config_problem_ = self._config(run_id)
        problems = [config_problem_] if config_problem_ else []
        status_data, status_problem_ = self._load(run_id, "status.json")
        if status_data is None:
            problems.append(status_problem_ or "status.json is missing")
        steps, steps_problem = self._steps(run_id)
        (before, before_problem), (after, after_problem) = self._load(run_id, "before.json"), self._load(run_id, "after.json")
        problems += [p for p in (steps_problem, before_problem, after_problem) if p]
        if (status_data or {}).get("status") in EVALUATED:  # a finished run was evaluated before and after
            problems += [f"{name} is missing" for name in ("before.json", "after.json")
                         if not (self.path(run_id) / name).exists()]
        status = self.status(run_id)
        if problems:
            status = {**(status_data or {}), "status": "damaged", "message": "damaged: " + "; ".join(problems),
                      "was": (status_data or {}).get("status")}
        return Run(run_id, config, status, steps, before, after, problems)
