from __future__ import annotations

from dataclasses import dataclass

import torch

from unlearning.methods.base import Method, MethodConfig, register
from unlearning.methods.losses import forward, masked_mse, sample_nll
from unlearning.options import option


@dataclass
class RMUConfig(MethodConfig):
    layer: int = option(
        -1, "Decoder block whose output is steered; -1 = the middle one. The last block's output is read after the "
        "model's final norm, as transformers returns it.", ge=-1, le=10_000,
    )
    steering_coeff: float = option(
        6.5, "c, the length of the target vector c*u. WMDP used 6.5 for Zephyr-7B at layer 7 of 32; a target much "
        "shorter than the layer's activations mostly shrinks them, a longer one scrambles them harder.", gt=0, le=1e4,
    )
    alpha: float = option(100.0, "Weight of the retain term (WMDP's code default 100; its Zephyr-7B run used 1200).",
                          ge=0, le=1e5)
    seed: int = option(0, "Seed of the random direction u.", ge=0, le=2**32 - 1)


@register
class RMU(Method):
    """RMU (representation misdirection): scramble one layer's activations on forget data, pin them on retain data.

    L = mean ||h_f - c*u||^2 + alpha * mean ||h_r - h_ref_r||^2, h = output of block `layer`, u a fixed random unit
    vector, means over hidden units and real tokens.  Li et al. 2024, "The WMDP Benchmark: Measuring and Reducing
    Malicious Use with Unlearning"; u drawn uniformly in [0, 1) then normalised, as in the WMDP code.
    """

    name = "rmu"
    title = "RMU (representation misdirection)"
    formula = (
        r"$\mathcal{L} = \mathbb{E}_{D_f}\big[\|h^{(\ell)}_\theta(x) - c\,u\|^2\big] + \alpha\,\mathbb{E}_{D_r}"
        r"\big[\|h^{(\ell)}_\theta(x) - h^{(\ell)}_{\mathrm{ref}}(x)\|^2\big]$"
    )
    intuition = (
        "Instead of changing which words the model outputs, RMU works inside it. On forget data it forces the "
        "activations of one middle layer towards a fixed random vector, so everything the later layers receive "
        "about those texts is noise; on retain data it keeps that layer's activations exactly as they were. The "
        "model then babbles on forgotten topics while behaving normally elsewhere. It was designed to remove "
        "hazardous knowledge (WMDP) and is usually trained on a few layers only."
    )
    paper = "Li et al. 2024, The WMDP Benchmark: Measuring and Reducing Malicious Use with Unlearning (ICML)"
    Config = RMUConfig
    needs_reference = True

    def __init__(self, config: RMUConfig) -> None:
        super().__init__(config)
        self.direction: torch.Tensor | None = None  # u, drawn on first use, when the hidden size is known

    def target(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.direction is None:
            generator = torch.Generator().manual_seed(self.config.seed)
            u = torch.rand(hidden.shape[-1], generator=generator)
            self.direction = u / u.norm()
        return self.config.steering_coeff * self.direction.to(hidden.device, torch.float32)

    def layer_index(self, model) -> int:
        n_layers = model.config.num_hidden_layers
        return n_layers // 2 if self.config.layer == -1 else self.config.layer

    def problems(self, model, config) -> list[str]:
        n, layer = model.config.num_hidden_layers, self.layer_index(model)
        if layer >= n:
            return [f"layer {self.config.layer} does not exist: the model has blocks 0..{n - 1} (or -1, the middle one)"]
        # With only the last k blocks training, the steered block must be one of them: the loss reads nothing else, so
        # an earlier block's output cannot move and the run would have no gradient at all.
        if config.params == "last_k" and layer < n - config.last_k:
            return [f"RMU steers block {layer}, but with last_k={config.last_k} only blocks {n - config.last_k}-{n - 1} "
                    f"train, so nothing can change its output: train the last {n - layer} blocks or more, or steer a "
                    "later block (option layer)"]
        return []

    def loss(self, model, batch, reference=None):
        forget, retain = batch["forget"], batch["retain"]
        # hidden_states[0] is the embeddings, [i + 1] the output of block i (after the final norm for the last block)
        index = self.layer_index(model) + 1
        out_f = forward(model, forget, output_hidden_states=True)
        h_f = out_f.hidden_states[index]
        forget_mse = masked_mse(h_f, self.target(h_f), forget["attention_mask"])
        out_r = forward(model, retain, output_hidden_states=True)
        with torch.no_grad():
            h_ref = forward(reference, retain, output_hidden_states=True).hidden_states[index]
        retain_mse = masked_mse(out_r.hidden_states[index], h_ref, retain["attention_mask"])
        terms = {
            "forget_nll": sample_nll(out_f.logits, forget["labels"]).mean().item(),
            "retain_nll": sample_nll(out_r.logits, retain["labels"]).mean().item(),
            "forget_mse": forget_mse.item(),
            "retain_mse": retain_mse.item(),
        }
        return forget_mse + self.config.alpha * retain_mse, terms
