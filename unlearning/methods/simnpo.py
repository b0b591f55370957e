from __future__ import annotations

from dataclasses import dataclass

from unlearning.methods.base import register
from unlearning.methods.grad_diff import GradientDifference, RetainTermConfig
from unlearning.methods.losses import npo_loss, sample_nll
from unlearning.options import option


@dataclass
class SimNPOConfig(RetainTermConfig):
    beta: float = option(2.5, "Inverse temperature: the larger, the sooner the push on an answer fades.", gt=0, le=1e3)
    margin: float = option(0.0, "Reward margin (the paper's gamma, not the forget weight): above 0 the push fades later.",
                           ge=0, le=1e3)


@register
class SimNPO(GradientDifference):
    """SimNPO: NPO with no reference model and a length-normalised log-probability, plus the retain term.

    forget term = -(2/beta) * mean logsigmoid(-(beta/|y|) * log pi_theta(y|x) - margin), |y| = answer tokens.
    Fan et al. 2024, "Simplicity Prevails: Rethinking Negative Preference Optimization for LLM Unlearning".
    The only change from gradient difference is `forget_loss`.
    """

    name = "simnpo"
    title = "SimNPO"
    formula = (
        r"$\mathcal{L} = -\frac{2}{\beta}\,\mathbb{E}_{D_f}\Big[\log\sigma\Big(-\frac{\beta}{|y|}\log\pi_\theta(y\mid x)"
        r" - \gamma\Big)\Big] + \alpha\,R(D_r)$"
    )
    intuition = (
        "A simpler NPO. Instead of comparing with the original model, it looks at the model's own average "
        "per-word confidence in each forget answer and pushes it down, fading out once the answer is unlikely. "
        "Averaging per word means long and short answers are pushed equally hard, and no frozen copy of the "
        "original model is needed, which saves memory."
    )
    paper = "Fan et al. 2024, Simplicity Prevails: Rethinking Negative Preference Optimization for LLM Unlearning"
    Config = SimNPOConfig

    def forget_loss(self, logits, batch, reference):
        forget_nll = sample_nll(logits["forget"], batch["forget"]["labels"])
        # -(2/b) logsigmoid(-(b/|y|) log pi - m) = (2/b) softplus(b * (log pi / |y| + m / b)), and log pi / |y| = -nll.
        term = npo_loss(-forget_nll + self.config.margin / self.config.beta, self.config.beta)
        return term, {"forget_nll": forget_nll.mean().item()}
