from __future__ import annotations

from dataclasses import dataclass

from unlearning.methods.base import register
from unlearning.methods.grad_diff import GradientDifference, RetainTermConfig
from unlearning.methods.losses import log_ratio, npo_loss, sample_nll
from unlearning.options import option


@dataclass
class NPOConfig(RetainTermConfig):
    beta: float = option(0.1, "Inverse temperature: small beta behaves like gradient ascent, large beta stops sooner.",
                         gt=0, le=1e3)


@register
class NPO(GradientDifference):
    """Negative preference optimisation: DPO with only a rejected answer, plus the retain term (NPO+RT).

    forget term = (2/beta) * mean softplus(beta * (log pi_theta(y|x) - log pi_ref(y|x))), sequence log-probabilities.
    Zhang et al. 2024, "Negative Preference Optimization: From Catastrophic Collapse to Effective Unlearning".
    The only change from gradient difference is `forget_loss`.
    """

    name = "npo"
    title = "NPO (negative preference optimisation)"
    formula = (
        r"$\mathcal{L} = \frac{2}{\beta}\,\mathbb{E}_{D_f}\Big[\log\Big(1 + \Big(\frac{\pi_\theta(y\mid x)}"
        r"{\pi_{\mathrm{ref}}(y\mid x)}\Big)^{\beta}\Big)\Big] + \alpha\,R(D_r)$"
    )
    intuition = (
        "Like gradient ascent, it makes the forget answers less likely, but it compares the model with the original: "
        "once an answer has become much less likely than it used to be, its push fades away. Gradient ascent keeps "
        "pushing forever and wrecks the model; NPO slows down by itself, so forgetting is steadier and the rest of "
        "the model survives longer. The retain term keeps training on the retain set as in gradient difference."
    )
    paper = "Zhang et al. 2024, Negative Preference Optimization: From Catastrophic Collapse to Effective Unlearning (COLM)"
    Config = NPOConfig
    needs_reference = True

    def forget_loss(self, logits, batch, reference):
        forget = batch["forget"]
        forget_nll = sample_nll(logits["forget"], forget["labels"]).mean()
        return npo_loss(log_ratio(logits["forget"], reference, forget), self.config.beta), {"forget_nll": forget_nll.item()}
