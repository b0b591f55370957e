from __future__ import annotations

from unlearning.methods.base import Method, register
from unlearning.methods.losses import nll


@register
class GradientAscent(Method):
    """Gradient ascent: maximise the forget set's NLL, nothing holds the rest of the model in place.

    L = -NLL(forget).  Jang et al. 2023, "Knowledge Unlearning for Mitigating Privacy Risks in Language Models".
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

    def loss(self, model, batch, reference=None):
        forget_nll = nll(model, batch["forget"]).mean()
        return -forget_nll, {"forget_nll": forget_nll.item()}
