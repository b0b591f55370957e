from __future__ import annotations

from dataclasses import dataclass

import torch

from unlearning.methods.base import Method, MethodConfig, register
from unlearning.methods.losses import nll
from unlearning.options import option


@dataclass
class TaskVectorConfig(MethodConfig):
    alpha: float = option(1.0, "Scale of the negated task vector: how far past the original to step back.", gt=0, le=1e3)


@register
class TaskVector(Method):
    """Task-vector negation: fine-tune on the forget set, then subtract what that fine-tuning added.

    Train with L = NLL(forget); then theta = theta_0 - alpha * (theta_ft - theta_0).
    Ilharco et al. 2023, "Editing Models with Task Arithmetic" (ICLR).
    """

    name = "task_vector"
    title = "Task-vector negation"
    formula = (
        r"$\theta_{\mathrm{ft}} = \arg\min_\theta\ \mathrm{NLL}(D_f),\qquad "
        r"\theta_{\mathrm{unlearned}} = \theta_0 - \alpha\,(\theta_{\mathrm{ft}} - \theta_0)$"
    )
    intuition = (
        "First the model is trained to know the forget set even better, which shows the direction in weight space "
        "that 'knowing these facts' points to. When training ends, that change is reversed and applied the other "
        "way round from the original weights. During training the forget curve goes down; the unlearning happens "
        "in one jump at the end. It is cheap and needs no retain data, but it removes whatever the fine-tuning "
        "happened to learn, not only the facts."
    )
    paper = "Ilharco et al. 2023, Editing Models with Task Arithmetic (ICLR)"
    Config = TaskVectorConfig
    views = ("forget",)

    def loss(self, model, batch, reference=None):
        forget_nll = nll(model, batch["forget"]).mean()
        return forget_nll, {"forget_nll": forget_nll.item()}

    @torch.no_grad()
    def finish(self, model, initial):
        params = dict(model.named_parameters())
        for name, p0 in initial.items():
            # LoRA's update is B @ A with B starting at zero: negating B alone negates the whole update, while
            # negating A as well would flip its sign twice (and move A away from the trained A that B was paired with).
            if "lora_A" in name or "lora_embedding_A" in name:
                continue
            p = params[name]
            p.copy_(p0.to(p) - self.config.alpha * (p - p0.to(p)))
