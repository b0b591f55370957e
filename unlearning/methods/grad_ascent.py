from __future__ import annotations

from dataclasses import dataclass

from unlearning.methods.base import Method, MethodConfig, register
from unlearning.methods.losses import capped, nll
from unlearning.options import option


@dataclass
class GradAscentConfig(MethodConfig):
    nll_cap: float = option(
        0.0, "Bound on each forget sample's NLL in the loss, nats/token (0 = none): past it a sample gets no more push, "
        "so easy samples stop running off to gibberish while hard ones catch up.", ge=0, le=1e3,
    )


@register
class GradientAscent(Method):
    """Gradient ascent: maximise the forget set's NLL, nothing holds the rest of the model in place.

    L = -NLL(forget), each sample's NLL optionally capped (min(NLL, cap): no gradient past the cap).
    Jang et al. 2023, "Knowledge Unlearning for Mitigating Privacy Risks in Language Models".
    """

    name = "grad_ascent"
    title = "Gradient ascent"
    formula = r"$\mathcal{L} = -\,\mathbb{E}_{(x,y)\in D_f}\big[-\log \pi_\theta(y\mid x)\big]$"
    intuition = (
        "Train on the forget set with the sign of the loss flipped, so every step makes the memorised answers "
        "less likely. Nothing anchors the rest of the model, so it quickly forgets everything: watch the retain "
        "curve and the collapse warning."
    )
    paper = "Jang et al. 2023, Knowledge Unlearning for Mitigating Privacy Risks in Language Models (ACL)"
    views = ("forget",)
    Config = GradAscentConfig

    def loss(self, model, batch, reference=None):
        forget_nll = nll(model, batch["forget"])
        return -capped(forget_nll, self.config.nll_cap).mean(), {"forget_nll": forget_nll.mean().item()}
