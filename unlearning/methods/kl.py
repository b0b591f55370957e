from __future__ import annotations

from dataclasses import dataclass

from unlearning.methods.base import register
from unlearning.methods.grad_diff import RETAIN_LOSSES, GradDiffConfig, GradientDifference
from unlearning.options import option


@dataclass
class KLConfig(GradDiffConfig):
    retain_loss: str = option("kl", "Retain term: 'kl' (stay near the original; this method's point) or 'nll'.",
                              choices=RETAIN_LOSSES)


@register
class KLMinimisation(GradientDifference):
    """KL minimisation: ascend on the forget set while the retain set's next-token distributions stay the original's.

    L = -gamma * NLL(forget) + alpha * KL(original || model) on retain.  TOFU's KL baseline, Maini et al. 2024.
    The only change from gradient difference is the default retain term; the maths is inherited.
    """

    name = "kl"
    title = "KL minimisation"
    formula = (
        r"$\mathcal{L} = -\gamma\,\mathrm{NLL}(D_f) + \alpha\,\mathbb{E}_{(x,y)\in D_r}"
        r"\big[\mathrm{KL}\big(\pi_{\mathrm{ref}}(\cdot\mid x, y_{<t})\,\|\,\pi_\theta(\cdot\mid x, y_{<t})\big)\big]$"
    )
    intuition = (
        "Gradient ascent on the forget set, but instead of re-training on the retain answers the model is told to "
        "keep predicting exactly what the original model predicted on retain data. It copies the original's whole "
        "next-word distribution, not just the right answer, so it anchors the model more gently than gradient "
        "difference; ascent is still unbounded, so long runs can still collapse."
    )
    paper = "Maini et al. 2024, TOFU: A Task of Fictitious Unlearning for LLMs (COLM)"
    Config = KLConfig
