"""Every run on disk: its config, per-step metrics, before/after evaluations and optional weights.

runs/<run id>/
    config.json     the RunConfig, enough to reproduce the run
    status.json     queued | running | completed | cancelled | diverged | failed | interrupted, with a message
    metrics.jsonl   one line per training step (appended, so a crash keeps the curve so far)
    before.json     EvalReport of the original model
    after.json      EvalReport of the unlearned model
    adapter.safetensors / model.safetensors   optional weights
    probes.json     what the probes found (unlearning.probes), one entry per probe: options, date, wall time, result
Files are written to a temporary name and renamed, so a crash never leaves a half-written file.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from unlearning.engine import TrainConfig
from unlearning.evaluation.report import EvalConfig

ACTIVE = ("queued", "running")
_RUN_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{8}$")


@dataclass
class RunConfig:
    model: str = "default"  # anything load_model accepts, e.g. a prepared target's folder
    data: str = "bundled"  # anything load_data accepts
    forget_ids: list[str] = field(default_factory=list)
    retain_ids: list[str] | None = None  # None: the whole retain split
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    save_weights: bool = False
    name: str = ""
    sweep: str = ""  # the sweep this run is a point of (unlearning.sweep), "" for a run of its own

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        data = dict(data)
        data["train"] = TrainConfig(**data.get("train", {}))
        data["eval"] = EvalConfig(**data.get("eval", {}))
        return cls(**data)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def check_run_id(run_id: str) -> str:
    """Run ids come from the UI and the CLI: refuse anything that is not exactly our format (no paths)."""
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
        raise ValueError(f"not a run id: {run_id!r}")
    return run_id


class RunStore:
    def __init__(self, root: str | Path = "runs") -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, run_id: str) -> Path:
        return self.root / check_run_id(run_id)

    def create(self, config: RunConfig) -> str:
        # Time-ordered for listing, plus 32 random bits so ids cannot be guessed or collide.
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(4)
        self.path(run_id).mkdir()
        self.write_json(run_id, "config.json", config.to_dict())
        self.set_status(run_id, "queued")
        return run_id

    def write_json(self, run_id: str, name: str, data: dict) -> None:
        write_atomic(self.path(run_id) / name, json.dumps(data, indent=1))

    def read_json(self, run_id: str, name: str) -> dict | None:
        file = self.path(run_id) / name
        return json.loads(file.read_text(encoding="utf-8")) if file.exists() else None

    def set_status(self, run_id: str, status: str, message: str = "", **extra) -> None:
        previous = self.read_json(run_id, "status.json") or {"created": time.time()}
        self.write_json(run_id, "status.json", {**previous, **extra, "status": status, "message": message, "updated": time.time()})

    def append_step(self, run_id: str, log: dict) -> None:
        with open(self.path(run_id) / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(log) + "\n")

    def steps(self, run_id: str) -> list[dict]:
        file = self.path(run_id) / "metrics.jsonl"
        if not file.exists():
            return []
        logs = []
        for line in file.read_text(encoding="utf-8").splitlines():
            try:
                logs.append(json.loads(line))
            except json.JSONDecodeError:  # the last line of a run killed mid-write
                break
        return logs

    def probes(self, run_id: str) -> dict:
        """The probes run on this run, by probe name (the latest result of each)."""
        return self.read_json(run_id, "probes.json") or {}

    def save_probe(self, run_id: str, name: str, entry: dict) -> None:
        self.write_json(run_id, "probes.json", {**self.probes(run_id), name: entry})

    def config(self, run_id: str) -> RunConfig:
        return RunConfig.from_dict(self.read_json(run_id, "config.json"))

    def status(self, run_id: str) -> dict:
        return self.read_json(run_id, "status.json") or {"status": "unknown", "message": ""}

    def ids(self) -> list[str]:
        """All runs, newest first; folders that are not runs are ignored."""
        return sorted((p.name for p in self.root.iterdir() if p.is_dir() and _RUN_ID.match(p.name)), reverse=True)

    def recover(self) -> list[str]:
        """After a crash or restart, runs still marked active were cut off: mark them interrupted."""
        cut = [r for r in self.ids() if self.status(r)["status"] in ACTIVE]
        for run_id in cut:
            self.set_status(run_id, "interrupted", "the app stopped while this run was in progress; its curve so far is kept")
        return cut

    def delete(self, run_id: str) -> None:
        shutil.rmtree(self.path(run_id))
