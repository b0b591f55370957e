"""The training loop every method runs in: a copy of the model, an optimiser, and a per-step log.

The original model is never touched: unlearning trains a deep copy (optionally through LoRA adapters), so the
"before" model stays available for comparison and a cancelled or failed run loses nothing.
Runs go through Hugging Face Accelerate, so `accelerate launch` (DDP, FSDP, DeepSpeed) scales them out.
"""
from __future__ import annotations

import copy
import ctypes
import functools
import os
import shutil
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from accelerate import Accelerator
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from unlearning.batching import MAX_LENGTH, answer_logits_only, collate, encode, supports_logits_to_keep
from unlearning.data.records import Record
from unlearning.methods import Method, get_method
from unlearning.models import bf16_is_fast, decoder_layers
from unlearning.monitor import Monitor
from unlearning.options import check, option
from unlearning.prefix import PrefixCache, supports, tail, tail_layers

PARAM_MODES = {"full": "all weights (full)", "last_k": "only the last k layers", "lora": "LoRA adapters"}
DURING = "during the run"  # the option group of in-run scores, per-sample balance, best checkpoint and guard


@dataclass
class TrainConfig:
    """The engine's settings. Defaults are the measured working point of the default model (SmolLM2-135M,
    docs/recipes.md): 3e-5 for ~60 steps; the random tiny model's gradients are tiny and it needs ~1e-3
    (models.TINY_LEARNING_RATE)."""

    method: str = "grad_diff"
    method_options: dict = field(default_factory=dict)
    steps: int = option(60, "Optimiser steps; each sees one forget batch (and one retain batch).", ge=1, le=100_000)
    learning_rate: float = option(
        3e-5, "3e-5 for ~60 steps suits the 135M default model (measured, docs/recipes.md); the random tiny model "
        "needs ~1e-3.",
        gt=0, le=1.0, flags=("--learning-rate", "--lr"),
    )
    batch_size: int = option(4, "Forget (and retain) samples per step.", ge=1, le=4096)
    params: str = option("full", "What trains; fewer trainable weights: less memory, gentler edits.", choices=PARAM_MODES,
                         label="what trains")
    last_k: int = option(4, "How many of the last decoder layers train (what trains: last_k).", ge=1, le=10_000,
                         label="k (last layers that train)", when=("params", "last_k"))
    lora_rank: int = option(8, "Rank of the LoRA adapters (what trains: lora); they are merged into the model after "
                            "training.", ge=1, le=4096, label="LoRA rank", when=("params", "lora"))
    max_length: int = option(MAX_LENGTH, "Tokens per sample, at most the model's context; a longer sample loses the "
                             "start of its prompt, never its answer (the run's notes count them).", ge=8, le=1_000_000,
                             label="max length (tokens per sample)", advanced=True)
    grad_clip: float = option(1.0, "Largest gradient norm per step; 0 turns clipping off.", ge=0, le=1e6,
                              label="gradient clipping (0 = off)", advanced=True)
    precision: str = option("auto", "auto: bf16 autocast on GPUs and CPUs that do bf16 fast; master weights keep "
                            "their dtype.", choices=("auto", "fp32", "bf16"), advanced=True)
    compile: bool = option(False, "torch.compile the decoder blocks: ~25% faster steps on the 135M model after a ~30 s "
                           "first step (once per session); needs a C++ compiler.", label="compile (torch.compile)",
                           advanced=True)
    prefix_cache: bool = option(True, "Last-k training computes the frozen blocks' outputs once per sample and steps "
                                "through the last k only (same losses; Llama and OLMo architectures).", advanced=True)
    seed: int = option(0, "Seed of the batch order (and of LoRA's initial adapters).", ge=0, le=2**32 - 1, advanced=True)

    # Scores during the run (unlearning.monitor): the forget samples and the retain-eval sample, teacher forced.
    # 20: a pass costs about two full-weight steps, so at the default 60 steps the scores take ~13% of training
    # (benchmarks/scoring.py); every 10 would take ~22%
    score_every: int = option(20, "Score forget and retain every N steps, teacher forced (no generation); 0 = off. "
                              "Everything below needs it.", ge=0, le=100_000, label="score every N steps", group=DURING)
    generate_every: int = option(0, "Also generate and score officially every N steps, with the fluency check (slow); "
                                 "0 = off.", ge=0, le=100_000, label="generate every N steps", group=DURING)
    forgotten_em: float = option(0.25, "A forget sample counts as forgotten once its exact memorization (share of "
                                 "answer tokens it still predicts) falls to the level of the data's unseen holdout "
                                 "samples of its task and kind, or to this where there are none.", ge=0, le=1,
                                 label="forgotten at exact memorization", group=DURING)
    skip_forgotten: bool = option(False, "Stop pushing forgotten samples: they leave the forget batches, and the run "
                                  "ends when all are forgotten.", group=DURING)
    focus_unforgotten: bool = option(False, "Draw forget batches by how much of each sample is still memorised.",
                                     group=DURING)
    keep_best: bool = option(False, "Keep the best scored state (the least forget score that keeps the retain floor) "
                             "and make it the run's model; costs a copy of the trained weights.", group=DURING)
    retain_floor: float = option(0.9, "Share of the original's retain score the best state must keep.", ge=0, le=1,
                                 group=DURING)
    stop_below: float = option(0.0, "Guard: stop the run when the retain score falls under this share of the "
                               "original's (0 = never).", ge=0, le=1, label="stop when retain falls below", group=DURING)

    def __post_init__(self) -> None:
        check(self)
        needs_scores = [n for n in ("skip_forgotten", "focus_unforgotten", "keep_best") if getattr(self, n)] + (
            ["stop_below"] if self.stop_below else []) + (["generate_every"] if self.generate_every else [])
        if needs_scores and not self.score_every:
            raise ValueError(f"{', '.join(needs_scores)} need scores during the run: set score_every above 0")
        get_method(self.method, **self.method_options)  # unknown method or option: fail now, not mid-run

    def to_dict(self) -> dict:
        return asdict(self)


def trains(config: TrainConfig) -> str:
    """What a run trains, in words, with the k or the rank it uses."""
    return {"full": "all weights", "last_k": f"the last {config.last_k} blocks",
            "lora": f"LoRA adapters of rank {config.lora_rank}"}[config.params]


def cpp_compiler() -> str | None:
    """The compiler torch.compile's CPU backend would call, if there is one."""
    return shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")


@dataclass
class UnlearnResult:
    model: PreTrainedModel  # the unlearned copy, LoRA merged in
    history: list[dict]  # one entry per step: step, loss, grad_norm, seconds, tokens, the method's terms, scores
    status: str  # completed | stopped (the guard) | cancelled | diverged
    message: str = ""
    adapter: dict[str, torch.Tensor] | None = None  # LoRA weights, when params == "lora"
    kept: dict | None = None  # the best checkpoint put back: step, why, scores, bytes it held


@functools.cache
def accelerator() -> Accelerator:
    """One per process: Accelerate's state is a process-wide singleton that refuses a second configuration.

    Mixed precision stays off here because the engine autocasts itself, per run, with the run's own precision.
    """
    return Accelerator(cpu=not torch.cuda.is_available())


@functools.cache
def glibc() -> ctypes.CDLL | None:
    """The C library's allocator controls (glibc on Linux only; musl and other C libraries have no mallopt)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


@functools.cache
def keep_freed_memory() -> bool:
    """Have glibc keep freed memory for the next allocation instead of handing it back to the kernel at once.

    Why: a step frees and reallocates gigabytes of activations and gradients. By default glibc serves large blocks
    with mmap and unmaps them on free, so every step page-faults them back in; in a virtual machine that returns freed
    pages to its host each fault costs several microseconds (measured: 155 ms to zero one 113 MB gradient during a
    run, 7 ms once memory is kept, and the first steps of a run up to twice as slow). PyTorch's GPU caching allocator
    does the same for GPU memory. Process-wide and permanent; returns whether it applied. A finished run hands what
    it kept back (give_back_freed_memory).
    """
    libc = glibc()
    if libc is None:
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's malloc.h
    # No mmap: big blocks come from the heap and go back to it; the heap's top is returned only above 1 GiB free.
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 1 << 30))


def give_back_freed_memory() -> None:
    """Return the free memory keep_freed_memory held to the system, once a run is over.

    Between runs nothing reuses it: a studio left open after a run would otherwise hold a run's worth of freed
    activations and optimiser state (measured: 2.2 GiB held, 0.8 GiB live, after a tiny-model run), and in a
    long-lived process the kept heap fragments and grows from run to run.
    """
    libc = glibc()
    if libc is not None:
        libc.malloc_trim(0)


SLOW_STEP_SECONDS = 1.0  # a step slower than this also reports as its backward pass starts


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "fp32":
        return None
    if precision == "bf16" or bf16_is_fast(device):
        return torch.bfloat16
    return None


def make_trainable(model: PreTrainedModel, config: TrainConfig) -> PreTrainedModel:
    """Choose what trains: all weights, the last k blocks, or LoRA adapters on every linear layer."""
    if config.params == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=config.lora_rank, lora_alpha=2 * config.lora_rank, lora_dropout=0.0, target_modules="all-linear")
        return get_peft_model(model, lora)
    model.requires_grad_(config.params == "full")
    if config.params == "last_k":
        for layer in decoder_layers(model)[-config.last_k :]:
            layer.requires_grad_(True)
    return model


def compile_layers(layers: torch.nn.ModuleList) -> Callable[[], None]:
    """Swap each decoder block for its torch.compile'd version; returns the function that swaps the originals back.

    Why blocks, not the model: the blocks share one compiled graph, so compiling costs ~30 s on 2 cores instead of
    ~4 min for the whole model, for the same speed (fused norms, rotary and activation ops).
    dynamic=True: batches change length every step, and a graph per length would recompile all run long.
    Swapped back after training, so the unlearned model generates with plain blocks and a KV cache.
    """
    originals = list(layers)
    for i, layer in enumerate(originals):
        layers[i] = torch.compile(layer, dynamic=True)

    def restore() -> None:
        for i, layer in enumerate(originals):
            layers[i] = layer

    return restore


def train(
    original: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget: list[Record],
    retain: list[Record],
    config: TrainConfig,
    on_step: Callable[[dict], None] | None = None,
    cancel: threading.Event | None = None,
    monitor: Monitor | None = None,
    progress: Callable[[str, float, int], None] | None = None,
    prefix: PrefixCache | None = None,
) -> UnlearnResult:
    """Train a copy of `original` with `config.method`; `on_step` sees each step's log, `cancel` stops between steps.

    With a `monitor` (unlearning.monitor) the run is scored before the first step and every `score_every` steps, the
    scores ride on the step logs (a step-0 log carries the original's), and the monitor may change the forget batches,
    keep the best state, or end the run. `progress(stage, done, total)` follows the work between steps, batch by batch
    (filling the frozen-prefix cache, the monitor's scoring passes), and says when a slow step's backward pass starts.
    `prefix` is a cache to fill and reuse across runs (a sweep's); without one a last-k run that can use it makes its
    own. The data and settings come from a checked plan (unlearning.plan.make_plan): nothing is checked again here.
    """
    method = get_method(config.method, **config.method_options)
    acc = accelerator()
    if acc.device.type == "cpu":
        keep_freed_memory()
    torch.manual_seed(config.seed)
    model = make_trainable(copy.deepcopy(original), config)
    model.train()
    model.config.use_cache = False  # training needs no KV cache, and building one breaks torch.compile's graph
    reference = original.eval() if method.needs_reference else None
    # Only a method that edits weights after training (task vectors) needs their starting values: a whole copy.
    edits_after = type(method).finish is not Method.finish
    initial = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad} if edits_after else {}
    dtype = autocast_dtype(config.precision, acc.device)
    if dtype is not None and acc.device.type == "cpu":
        # On CPU, bf16 SDPA's backward is ~4x slower than eager attention's (measured).
        model.set_attn_implementation("eager")
    features = {
        view: [encode(tokenizer, prompt, answer, config.max_length) for prompt, answer in method.view_pairs(view, forget, retain)]
        for view in method.views
    }
    full, cache = model, None  # `full` is what the run returns; with the cache, each step runs only its last k blocks
    scoring = None  # with the cache, the monitor's teacher-forced passes run the last k blocks too
    if config.params == "last_k" and config.prefix_cache and supports(original):
        cache = prefix if prefix is not None else PrefixCache()
        scored = []
        if monitor is not None:  # the holdout is read only by the step-0 pass, which an earlier run may have made
            scored = monitor.features + ([] if monitor.start_known(cached=True) else monitor.holdout_features)
        cache.fill(original, model, config.last_k, dtype, [f for feats in features.values() for f in feats] + scored,
                   progress)
        model = tail(model, config.last_k)
        reference = tail(reference, config.last_k) if reference is not None else None
        # its own cut of `full`: the training tail's blocks may be compiled for training, these stay plain
        scoring = (tail(full, config.last_k), cache) if monitor is not None else None
    layers = tail_layers(model) if cache is not None else decoder_layers(model)
    restore_layers = compile_layers(layers) if config.compile else (lambda: None)
    trainable = [p for p in model.parameters() if p.requires_grad]
    # fused: one kernel for the whole update instead of a dozen per-tensor ops; what Trainer uses by default
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=0.0, fused=True)
    model, optimizer = acc.prepare(model, optimizer)
    trim = answer_logits_only if supports_logits_to_keep(original) else (lambda batch: batch)
    generator = torch.Generator().manual_seed(config.seed + acc.process_index)  # each DDP rank draws its own batches
    history: list[dict] = []
    status, message = "completed", ""

    def observe(step: int) -> tuple[dict, tuple[str, str]]:
        # `full` holds the weights the best state copies and generates when generation is due
        with torch.autocast(acc.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            entry = monitor.score(full, step, scoring, progress)
        return entry, monitor.decide(step, entry, full)

    if monitor is not None:
        start_log = {"step": 0, "scores": observe(0)[0]}
        if on_step is not None:
            on_step(start_log)
    steps = method.schedule(len(forget), len(retain), config.steps, config.batch_size, generator,
                            [len(f["input_ids"]) for f in features.get("forget", [])])
    step = 0
    for step, (forget_idx, retain_idx) in enumerate(steps, start=1):
        if cancel is not None and cancel.is_set():
            status, message = "cancelled", f"cancelled by the user after {step - 1} of {config.steps} steps"
            step -= 1
            break
        if monitor is not None:
            forget_idx = monitor.pick(forget_idx, generator)
            if not forget_idx and "forget" in method.views:
                status, message = "completed", f"ended early: every forget sample counted as forgotten before step {step}"
                step -= 1
                break
        start = time.perf_counter()
        batch = {}
        for view, feats in features.items():
            picked = [feats[i] for i in (retain_idx if view == "retain" else forget_idx)]
            batch[view] = trim(collate(picked, tokenizer.pad_token_id, acc.device))
            if cache is not None:
                batch[view] |= cache.inputs(picked)
        with torch.autocast(acc.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss, terms = method.loss(model, batch, reference)
        if not torch.isfinite(loss):
            status, message = "diverged", f"the loss became {loss.item()} at step {step}; stopped (try a lower learning rate)"
            step -= 1
            break
        if progress is not None and history and history[-1]["seconds"] > SLOW_STEP_SECONDS:  # several views and
            # a reference model take seconds; a first step keeps what its caller said of it (e.g. compiling)
            progress(f"step {step}'s gradients", 0, 1)
        optimizer.zero_grad(set_to_none=True)
        acc.backward(loss)
        grad_norm = acc.clip_grad_norm_(model.parameters(), config.grad_clip if config.grad_clip > 0 else float("inf"))
        optimizer.step()
        log = {
            "step": step,
            "loss": loss.item(),
            "grad_norm": float(grad_norm),
            "seconds": time.perf_counter() - start,
            "tokens": sum(int(b["attention_mask"].sum()) for b in batch.values()),
            **terms,
        }
        ending = ("", "")
        if monitor is not None and monitor.due(step, config.steps):
            log["scores"], ending = observe(step)
        history.append(log)
        if on_step is not None:
            on_step(log)
        if ending[0]:
            status, message = ending
            break

    kept = monitor.restore_best(full, step) if monitor is not None and status != "diverged" else None
    restore_layers()
    acc.free_memory()  # drop Accelerate's references to this run's model and optimiser
    del optimizer
    model = full
    adapter = None
    if status != "diverged":
        method.finish(model, initial)
    if config.params == "lora":
        from peft import get_peft_model_state_dict

        adapter = {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(model).items()}
        model = model.merge_and_unload()
    model.set_attn_implementation(original.config._attn_implementation)  # generation is fastest with the original's
    model.config.use_cache = original.config.use_cache
    # every weight requiring grad, as loading leaves a model: PyTorch folds a batch into one matrix product only then
    # (matmul's should_fold), and generation slices the last position out of a padded batch; unfolded, a bf16 prefill
    # copies the output head once per prompt and takes twice as long (measured on the default model)
    model.requires_grad_(True)
    return UnlearnResult(model.eval(), history, status, message, adapter, kept)
