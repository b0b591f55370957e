from __future__ import annotations

import torch

from unlearning.methods.base import Method, register
from unlearning.methods.losses import exact_memorisation, forward, sample_nll


@register
class Finetune(Method):
    """Plain fine-tuning, L = NLL(D): how a target model memorises its data before anyone unlearns it.

    Not an unlearning method (hidden from the pickers); prepare-target runs it through the same engine.
    """

    name = "finetune"
    title = "Fine-tune (memorise)"
    formula = r"$\mathcal{L} = \mathbb{E}_{(x,y)\in D}\big[-\log \pi_\theta(y\mid x)\big]$"
    intuition = "Ordinary training: make the model reproduce every answer, as the SemEval organisers did to build their target."
    paper = "Ramakrishna et al. 2025, SemEval-2025 Task 4: Unlearning sensitive content from Large Language Models"
    views = ("forget",)
    unlearns = False

    def loss(self, model, batch, reference=None):
        forget = batch["forget"]
        logits = forward(model, forget).logits
        loss = sample_nll(logits, forget["labels"]).mean()
        # free from the logits at hand: prepare-target stops once an epoch's worth of batches is memorised
        return loss, {"forget_nll": loss.item(), "memorised": exact_memorisation(logits.detach(), forget["labels"]).mean().item()}

    def schedule(self, n_forget, n_retain, steps, batch_size, generator):
        """Shuffled epochs, so every sample is seen equally often: memorisation needs all of them."""
        order: list[int] = []
        for _ in range(steps):
            if len(order) < batch_size:
                order += torch.randperm(n_forget, generator=generator).tolist()
            batch, order = order[:batch_size], order[batch_size:]
            yield batch, []
