"""What every section shares: the machine's figures (psutil), tables (pandas), the fixed step batch, verdicts."""
from __future__ import annotations

import dataclasses
import functools
import os
import platform
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd
import psutil
import torch

from unlearning.data import bundled_dataset
from unlearning.data.records import Record
from unlearning.models import cpu_has_bf16
from unlearning.models import LoadedModel, load_model

GIB = 1024**3
# bf16 keeps 8 significant bits (relative rounding 2^-8 = 0.4%); a few such roundings compound through the layers,
# so a bf16-autocast loss within 2% of the fp32 one is the same loss.
LOSS_TOLERANCE = 0.02


@dataclasses.dataclass
class Context:
    """What a section's `run` gets: the --quick flag, the parsed options, and the default model loaded once."""

    quick: bool
    batch_size: int = 4
    eval_batch_size: int = 64
    max_new_tokens: int | None = None

    @functools.cached_property
    def model(self) -> LoadedModel:
        return load_model("default")


def table(title: str, rows: list[dict], floats: str = "{:.4g}") -> None:
    """Print `rows` (one dict per row, keys as column names) under `title`."""
    print(f"\n{title}")
    frame = pd.DataFrame(rows)
    text = frame.to_string(index=False, float_format=lambda x: floats.format(x), na_rep="-")
    print("\n".join("  " + line for line in text.splitlines()))


def meets(value: float, goal: float, higher_is_better: bool = True) -> str:
    """'meets' or 'MISSES' (loud, to stand out in a table)."""
    return "meets" if (value >= goal if higher_is_better else value < goal) else "MISSES"


def verdict(value: float, goal: float, higher_is_better: bool = True) -> str:
    return f"{meets(value, goal, higher_is_better)} the goal ({'>=' if higher_is_better else '<'} {goal:g})"


def available_memory() -> int:
    """Bytes that can be allocated without swapping or evicting other work (the kernel's MemAvailable)."""
    return psutil.virtual_memory().available


def busy_cores(seconds: float = 1.0) -> float:
    """Cores other processes keep busy over `seconds` (the load average lags by minutes)."""
    return psutil.cpu_percent(interval=seconds) / 100 * psutil.cpu_count()


def pick_threads(requested: str) -> int:
    """--threads auto: every core, less the ones other work keeps busy right now.

    Why: a PyTorch CPU op split over 2 threads waits for the slower one, and a thread sharing its core with another
    process loses whole scheduler time slices. Measured here with load average ~4 on 2 cores: 30 s per step with
    2 threads, 5 s with 1. Both sides of every ratio run with the same count, so the ratios stay fair.
    """
    cores = psutil.cpu_count() or 1
    if requested != "auto":
        return max(1, int(requested))
    return max(1, min(cores, cores - round(busy_cores())))


def machine() -> dict:
    return {
        "processor": platform.processor() or platform.machine(), "cores": psutil.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "bf16_matmul": cpu_has_bf16(),
        "threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version(),
        "load_average": psutil.getloadavg(), "memory_available_gib": available_memory() / GIB,
        "memory_total_gib": psutil.virtual_memory().total / GIB,
    }


def matmul_peak(dtype: torch.dtype, n: int = 2048, seconds: float = 1.0, device: str = "cpu") -> float:
    """FLOP/s of the fastest n x n matmul in `seconds` of trying: the practical peak of this machine for `dtype`."""
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)  # a GPU matmul returns before it is done
    torch.matmul(a, b)  # warm-up: oneDNN and cuBLAS pick and cache their kernel on the first call
    sync()
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        torch.matmul(a, b)
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best  # the fastest call is the one least disturbed by other processes


def same_length_answers(tokenizer, records: list[Record], n: int, answer_tokens: int) -> list[Record]:
    """The first n records whose answer, cut to `answer_tokens` tokens (EOS included), survives re-tokenisation.

    Why: Hugging Face's loss is the mean over every answer token of the batch, the engine's the mean of per-sample
    means. The two agree exactly when all answers have the same length, so the step benchmarks build their batch
    that way and a loss difference can only come from precision.
    """
    chosen = []
    for record in records:
        ids = tokenizer(record.output, add_special_tokens=False)["input_ids"][: answer_tokens - 1]
        text = tokenizer.decode(ids)
        if len(ids) == answer_tokens - 1 and tokenizer(text, add_special_tokens=False)["input_ids"] == ids:
            chosen.append(dataclasses.replace(record, output=text))
        if len(chosen) == n:
            return chosen
    raise ValueError(f"only {len(chosen)} records can give a {answer_tokens}-token answer; asked for {n}")


def step_batch(loaded: LoadedModel, batch_size: int, answer_tokens: int = 30) -> tuple[list[Record], list[Record]]:
    """A realistic fixed batch from the bundled set: sentence completions (prompts of 25-70 tokens), answers cut to one length."""
    data = bundled_dataset()
    pick = lambda split: same_length_answers(loaded.tokenizer, [r for r in data.split(split) if r.kind == "sc"], batch_size, answer_tokens)
    return pick("forget"), pick("retain")


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # subprocesses (load, 1b) inherit it


@contextmanager
def cache_at(folder: Path | str) -> Iterator[Path]:
    """The studio's cache (targets, oracles, cached evaluations) in `folder` for the block, then back where it was: a
    section that starts from an empty cache really computes what a new user waits for."""
    previous = os.environ.get("UNLEARNING_CACHE")
    os.environ["UNLEARNING_CACHE"] = str(folder)
    try:
        yield Path(folder)
    finally:
        if previous is None:
            del os.environ["UNLEARNING_CACHE"]
        else:
            os.environ["UNLEARNING_CACHE"] = previous
