from __future__ import annotations

from dataclasses import dataclass

import torch

from unlearning.methods.base import Method, MethodConfig, Preset, register
from unlearning.methods.grad_ascent import GradAscentConfig
from unlearning.methods.losses import capped, forward_together, kl_to_reference, reference_logits, sample_nll
from unlearning.options import option

RETAIN_LOSSES = {"nll": "NLL (keep fitting)", "kl": "KL (stay near the original)"}


@dataclass
class RetainTermConfig(MethodConfig):
    """The options every method of the gradient-difference family shares: the retain term and the mixing."""

    gamma: float = option(1.0, "Weight of the forget term.", ge=0, le=1e4)
    alpha: float = option(
        1.0, "Weight of the retain term: the brake on collateral damage. On the 135M target at lr 3e-5, ~30 keeps "
        "the retain scores within 0.1 (docs/recipes.md).", ge=0, le=1e4,
    )
    retain_loss: str = option("nll", "Retain term: 'nll' (keep fitting) or 'kl' (stay near the original).",
                              choices=RETAIN_LOSSES)


@dataclass
class GradDiffConfig(GradAscentConfig, RetainTermConfig):
    """Gradient difference's own options: the retain term, and gradient ascent's per-sample bound on the forget term."""

    # Its own default: with plain ascent pushing, a retain weight of 1 lets the forget push wreck retain samples
    # (the verdict issue's scenario); 30 is the measured working point on the 135M target (docs/recipes.md).
    alpha: float = option(30.0, "Weight of the retain term: the brake on collateral damage. 30 keeps the retain groups "
                          "within 0.1 on the 135M target at lr 3e-5 (docs/recipes.md); 1 lets ascent wreck them.",
                          ge=0, le=1e4)


@register
class GradientDifference(Method):
    """Gradient difference: ascend on the forget set, descend on the retain set.

    L = -gamma * NLL(forget) + alpha * R(retain), R = NLL or KL(original || model); each forget sample's NLL optionally
    capped as in gradient ascent.
    Liu et al. 2022, "Continual Learning and Private Unlearning" (CoLLAs); retain-KL variant as in TOFU (Maini et al. 2024).
    Subclasses replace only `forget_loss`; the retain term, the mixing and the one forward pass over every view
    (losses.forward_together) live here once.
    """

    name = "grad_diff"
    title = "Gradient difference"
    formula = r"$\mathcal{L} = -\gamma\,\mathrm{NLL}(D_f) + \alpha\,R(D_r),\quad R\in\{\mathrm{NLL},\ \mathrm{KL}(\pi_{\mathrm{ref}}\,\|\,\pi_\theta)\}$"
    intuition = (
        "Gradient ascent on the forget set, plus ordinary training on the retain set so the model keeps what it "
        "should know. The retain term is a brake: the larger alpha, the less collateral damage and the slower "
        "the forgetting."
    )
    paper = "Liu et al. 2022, Continual Learning and Private Unlearning (CoLLAs)"
    Config = GradDiffConfig
    presets = (
        Preset("Balanced forgetting (measured on LUME)", "Every forget sample is pushed only up to a bound and batches "
               "favour those still remembered: on a LUME validation subset every forget group fell by half or more "
               "while every retain group held (task aggregate 0 -> 0.74; without the balance 0.51, retain questions "
               "broken). docs/recipes.md, section LUME.",
               train={"steps": 75, "learning_rate": 3e-5, "score_every": 5, "skip_forgotten": True,
                      "focus_unforgotten": True},
               options={"alpha": 30.0, "nll_cap": 5.0}),
    )

    @property
    def needs_reference(self) -> bool:  # type: ignore[override]
        return self.config.retain_loss == "kl"

    def forget_loss(self, logits, batch, reference) -> tuple[torch.Tensor, dict[str, float]]:
        """The forget term from each view's logits (`logits[view]`, aligned with `batch[view]["labels"]`)."""
        forget_nll = sample_nll(logits["forget"], batch["forget"]["labels"])
        return -capped(forget_nll, self.config.nll_cap).mean(), {"forget_nll": forget_nll.mean().item()}

    def loss(self, model, batch, reference=None):
        logits = dict(zip(self.views, forward_together(model, [batch[view] for view in self.views])))
        forget_term, terms = self.forget_loss(logits, batch, reference)
        retain = batch["retain"]
        retain_nll = sample_nll(logits["retain"], retain["labels"]).mean()
        if self.config.retain_loss == "kl":
            retain_term = kl_to_reference(logits["retain"], reference_logits(reference, retain), retain["labels"]).mean()
            terms["retain_kl"] = retain_term.item()
        else:
            retain_term = retain_nll
        terms["retain_nll"] = retain_nll.item()
        terms["forget_term"] = forget_term.item()
        return self.config.gamma * forget_term + self.config.alpha * retain_term, terms
