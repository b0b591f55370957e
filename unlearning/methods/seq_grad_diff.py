from __future__ import annotations

from dataclasses import dataclass

import torch

from unlearning.methods.base import Method, MethodConfig, Preset, register
from unlearning.methods.losses import forward_together, sample_nll
from unlearning.options import option


@dataclass
class SeqGradDiffConfig(MethodConfig):
    # Defaults from the authors' configs/sequential_args.json (iraklis07/llm-unlearning): chunk_size 32,
    # positive_ratio 7, positive_factor 0.5.
    chunk_size: int = option(32, "Forget samples per chunk; chunks are unlearned one after another.", ge=1, le=100_000)
    # at least 1: no retain samples would be plain chunked gradient ascent
    retain_ratio: int = option(7, "Retain samples mixed in per forget sample.", ge=1, le=1000)
    retain_weight: float = option(0.5, "Weight of each retain sample's NLL (a forget sample's is -1).", ge=0, le=1e4)


@register
class SequentialGradientDifference(Method):
    """Sequential unlearning with gradient difference (SUGD), the SemEval-2025 Task 4 winner.

    The forget set is cut into disjoint chunks unlearned in order; each step mixes forget samples of the current chunk
    with retain samples drawn cyclically, 1 : retain_ratio, and averages per-sample losses over the merged batch:
    L = (sum_r w * NLL_r - sum_f NLL_f) / (n_f + n_r).  The paper also trains only the last k layers (k = 8 of 32 in
    the authors' 7B config) or LoRA adapters: that is the engine's `params="last_k"`, not part of the loss.
    Premptis et al. 2025, "AILS-NTUA at SemEval-2025 Task 4: Parameter-Efficient Unlearning for Large Language Models
    using Data Chunking" (arXiv 2503.02443).
    """

    name = "seq_grad_diff"
    title = "Sequential gradient difference (AILS-NTUA, SemEval-2025 winner)"
    formula = (
        r"$\mathcal{L} = \frac{1}{|B|}\Big(w\sum_{(x,y)\in B_r}\mathrm{NLL}(y\mid x) - \sum_{(x,y)\in B_f}\mathrm{NLL}(y\mid x)"
        r"\Big),\quad B_f \subset \text{chunk}_k,\ |B_r| = r\,|B_f|$"
    )
    intuition = (
        "Gradient difference done a little at a time. The forget set is cut into small chunks that are unlearned "
        "one after the other, and every forget example is mixed with several retain examples (7 by default), so "
        "each step mostly rehearses what must be kept while nudging a few facts out. Working chunk by chunk avoids "
        "the sudden collapse of unlearning everything at once. The winning SemEval-2025 system also trained only "
        "the last layers of the model: choose 'last k layers' as the trainable parameters to reproduce it."
    )
    paper = (
        "Premptis et al. 2025, AILS-NTUA at SemEval-2025 Task 4: Parameter-Efficient Unlearning for Large Language "
        "Models using Data Chunking (SemEval)"
    )
    Config = SeqGradDiffConfig
    presets = (
        Preset("SemEval-2025 winner", "AILS-NTUA's published setting: the last 8 layers train at lr 1e-5, forget chunks "
               "of 32 each mixed 1:7 with retain samples (Premptis et al. 2025; configs/sequential_args.json).",
               train={"params": "last_k", "last_k": 8, "learning_rate": 1e-5, "batch_size": 8, "steps": 60},
               options={"chunk_size": 32, "retain_ratio": 7, "retain_weight": 0.5}),
    )

    def schedule(self, n_forget, n_retain, steps, batch_size, generator, lengths=()):
        """Chunks in index order, steps split evenly between them; a step's merged batch holds `batch_size` samples
        split 1 : retain_ratio (at least one forget sample, so at least 1 + retain_ratio samples).

        Within a chunk forget samples are taken in turn, so every one is seen once a chunk gets
        chunk_size / forget-per-step steps; retain samples cycle through one shuffled pass of the retain set.
        """
        ratio = self.config.retain_ratio
        per_step = max(1, batch_size // (1 + ratio))
        size = self.config.chunk_size
        chunks = [range(start, min(start + size, n_forget)) for start in range(0, n_forget, size)]
        retain_order = torch.randperm(n_retain, generator=generator).tolist()
        cursor = 0
        for k, chunk in enumerate(chunks):
            chunk_steps = steps * (k + 1) // len(chunks) - steps * k // len(chunks)
            n_f = min(per_step, len(chunk))
            for step in range(chunk_steps):
                forget = [chunk[(step * n_f + j) % len(chunk)] for j in range(n_f)]
                retain = [retain_order[(cursor + j) % n_retain] for j in range(n_f * ratio)] if n_retain else []
                cursor += len(retain)
                yield forget, retain

    def loss(self, model, batch, reference=None):
        forget, retain = batch["forget"], batch["retain"]
        forget_logits, retain_logits = forward_together(model, [forget, retain])
        forget_nll, retain_nll = sample_nll(forget_logits, forget["labels"]), sample_nll(retain_logits, retain["labels"])
        n = len(forget_nll) + len(retain_nll)
        loss = (self.config.retain_weight * retain_nll.sum() - forget_nll.sum()) / n
        return loss, {"forget_nll": forget_nll.mean().item(), "retain_nll": retain_nll.mean().item()}
