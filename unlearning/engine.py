"""The training loop every method runs in: a copy of the model, an optimiser, and a per-step log.

The original model is never touched: unlearning trains a deep copy (optionally through LoRA adapters), so the
"before" model stays available for comparison and a cancelled or failed run loses nothing.
Runs go through Hugging Face Accelerate, so `accelerate launch` (DDP, FSDP, DeepSpeed) scales them out.
"""
from __future__ import annotations

import copy
import ctypes
import functools
import inspect
import math
import os
import shutil
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from accelerate import Accelerator
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from unlearning.batching import answer_logits_only, collate, encode
from unlearning.data.records import Record
from unlearning.methods import Method, get_method
from unlearning.prefix import PrefixCache, supports, tail, tail_layers

PARAM_MODES = ("full", "last_k", "lora")


@dataclass
class TrainConfig:
    method: str = "grad_diff"
    method_options: dict = field(default_factory=dict)
    steps: int = 20
    learning_rate: float = 1e-5
    batch_size: int = 4
    params: str = "full"  # full | last_k (only the last k decoder layers train) | lora
    last_k: int = 4
    lora_rank: int = 8
    max_length: int = 256
    grad_clip: float = 1.0
    precision: str = "auto"  # auto | fp32 | bf16 (autocast; master weights keep their dtype)
    compile: bool = False  # torch.compile each decoder block: ~25% faster steps after a ~30 s first step
    # last_k: compute the frozen blocks' outputs once per sample and run each step through the last k blocks only
    # (unlearning.prefix; same losses, used where exact: Llama and OLMo architectures)
    prefix_cache: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        def whole(value, least: int) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and value >= least

        problems = []
        if not whole(self.steps, 1):
            problems.append(f"steps must be a whole number >= 1 (got {self.steps!r})")
        if not (isinstance(self.learning_rate, (int, float)) and 0 < self.learning_rate < math.inf):
            problems.append(f"learning rate must be a positive number (got {self.learning_rate!r})")
        if not whole(self.batch_size, 1):
            problems.append(f"batch size must be a whole number >= 1 (got {self.batch_size!r})")
        if self.params not in PARAM_MODES:
            problems.append(f"params must be one of {PARAM_MODES} (got {self.params!r})")
        if self.params == "last_k" and not whole(self.last_k, 1):
            problems.append(f"last_k must be a whole number >= 1 (got {self.last_k!r})")
        if self.params == "lora" and not whole(self.lora_rank, 1):
            problems.append(f"LoRA rank must be a whole number >= 1 (got {self.lora_rank!r})")
        if not whole(self.max_length, 8):
            problems.append(f"max_length must be >= 8 tokens (got {self.max_length!r})")
        if self.precision not in ("auto", "fp32", "bf16"):
            problems.append(f"precision must be auto, fp32 or bf16 (got {self.precision!r})")
        if self.compile and not cpp_compiler():
            problems.append("compile needs a C++ compiler (g++ or $CXX) for torch.compile; install one or turn compile off")
        if problems:
            raise ValueError("; ".join(problems))
        get_method(self.method, **self.method_options)  # unknown method or option: fail now, not mid-run

    def to_dict(self) -> dict:
        return asdict(self)


def cpp_compiler() -> str | None:
    """The compiler torch.compile's CPU backend would call, if there is one."""
    return shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")


@dataclass
class UnlearnResult:
    model: PreTrainedModel  # the unlearned copy, LoRA merged in
    history: list[dict]  # one entry per step: step, loss, grad_norm, seconds, tokens, and the method's terms
    status: str  # completed | cancelled | diverged
    message: str = ""
    adapter: dict[str, torch.Tensor] | None = None  # LoRA weights, when params == "lora"


@functools.cache
def accelerator() -> Accelerator:
    """One per process: Accelerate's state is a process-wide singleton that refuses a second configuration.

    Mixed precision stays off here because the engine autocasts itself, per run, with the run's own precision.
    """
    return Accelerator(cpu=not torch.cuda.is_available())


@functools.cache
def cpu_has_bf16() -> bool:
    """AVX-512 BF16 or AMX makes a bf16 matmul several times faster than fp32; without them bf16 is slower."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return "avx512_bf16" in flags or "amx_bf16" in flags


@functools.cache
def keep_freed_memory() -> bool:
    """Have glibc keep freed memory for the next allocation instead of handing it back to the kernel at once.

    Why: a step frees and reallocates gigabytes of activations and gradients. By default glibc serves large blocks
    with mmap and unmaps them on free, so every step page-faults them back in; in a virtual machine that returns freed
    pages to its host each fault costs several microseconds (measured: 155 ms to zero one 113 MB gradient during a
    run, 7 ms once memory is kept, and the first steps of a run up to twice as slow). PyTorch's GPU caching allocator
    does the same for GPU memory. Process-wide and permanent; returns whether it applied (glibc on Linux only).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's malloc.h
    # No mmap: big blocks come from the heap and go back to it; the heap's top is returned only above 1 GiB free.
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 1 << 30))


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "fp32":
        return None
    if precision == "bf16" or device.type == "cuda" or cpu_has_bf16():
        return torch.bfloat16
    return None


def decoder_layers(model: PreTrainedModel) -> torch.nn.ModuleList:
    """The stack of transformer blocks, found by shape so it works across Llama, OLMo, GPT-2, ..."""
    n = model.config.num_hidden_layers
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return module
    raise ValueError(f"could not find the {n} decoder layers of {type(model).__name__}")


def make_trainable(model: PreTrainedModel, config: TrainConfig) -> PreTrainedModel:
    """Choose what trains: all weights, the last k blocks, or LoRA adapters on every linear layer."""
    if config.params == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=config.lora_rank, lora_alpha=2 * config.lora_rank, lora_dropout=0.0, target_modules="all-linear")
        return get_peft_model(model, lora)
    model.requires_grad_(config.params == "full")
    if config.params == "last_k":
        layers = decoder_layers(model)
        if config.last_k > len(layers):
            raise ValueError(f"last_k={config.last_k} but the model has only {len(layers)} layers")
        for layer in layers[-config.last_k :]:
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


def check_data(forget: list[Record], retain: list[Record], config: TrainConfig, model: PreTrainedModel | None = None) -> Method:
    """Refuse data (and, given the model, a setup) the run cannot use, with a message for the user, before anything
    is copied or saved."""
    if not forget:
        raise ValueError("No forget samples selected: pick at least one sample to forget.")
    if config.batch_size > len(forget):
        raise ValueError(f"batch size {config.batch_size} is larger than the {len(forget)} forget samples: use at most {len(forget)}")
    method = get_method(config.method, **config.method_options)
    if "retain" in method.views and not retain:
        raise ValueError(f"{method.title} needs retain samples, and the retain set is empty")
    if model is not None:
        method.check(model, config)
    return method


def train(
    original: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget: list[Record],
    retain: list[Record],
    config: TrainConfig,
    on_step: Callable[[dict], None] | None = None,
    cancel: threading.Event | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    prefix: PrefixCache | None = None,
) -> UnlearnResult:
    """Train a copy of `original` with `config.method`; `on_step` sees each step's log, `cancel` stops between steps.

    `progress(stage, done, total)` follows the work before step 1 (filling the frozen-prefix cache). `prefix` is a
    cache to fill and reuse across runs (a sweep's); without one a last-k run that can use it makes its own.
    """
    method = check_data(forget, retain, config, original)
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
    if config.params == "last_k" and config.prefix_cache and supports(original):
        cache = prefix if prefix is not None else PrefixCache()
        cache.fill(original, model, config.last_k, dtype, [f for feats in features.values() for f in feats], progress)
        model = tail(model, config.last_k)
        reference = tail(reference, config.last_k) if reference is not None else None
    layers = tail_layers(model) if cache is not None else decoder_layers(model)
    restore_layers = compile_layers(layers) if config.compile else (lambda: None)
    trainable = [p for p in model.parameters() if p.requires_grad]
    # fused: one kernel for the whole update instead of a dozen per-tensor ops; what Trainer uses by default
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=0.0, fused=True)
    model, optimizer = acc.prepare(model, optimizer)
    keeps_logits = "logits_to_keep" in inspect.signature(type(original).forward).parameters
    trim = answer_logits_only if keeps_logits else (lambda batch: batch)
    generator = torch.Generator().manual_seed(config.seed + acc.process_index)  # each DDP rank draws its own batches
    history: list[dict] = []
    status, message = "completed", ""
    steps = method.schedule(len(forget), len(retain), config.steps, config.batch_size, generator)
    for step, (forget_idx, retain_idx) in enumerate(steps, start=1):
        if cancel is not None and cancel.is_set():
            status, message = "cancelled", f"cancelled by the user after {step - 1} of {config.steps} steps"
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
            break
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
        history.append(log)
        if on_step is not None:
            on_step(log)

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
    model.requires_grad_(False)
    return UnlearnResult(model.eval(), history, status, message, adapter)
