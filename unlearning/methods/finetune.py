from __future__ import annotations

import math

import torch
from transformers.trainer_pt_utils import get_length_grouped_indices

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
        # free from the logits at hand: prepare-target stops once an epoch's worth of batches is memorised. Over the
        # samples that have answer tokens only: one without (NaN) is not memorised, it is not measured at all
        shares = exact_memorisation(logits.detach(), forget["labels"])
        answered = int((~shares.isnan()).sum())
        memorised = shares.nanmean().item() if answered else 0.0
        return loss, {"forget_nll": loss.item(), "memorised": memorised, "answered": answered}

    def schedule(self, n_forget, n_retain, steps, batch_size, generator, lengths=()):
        """Shuffled epochs, so every sample is seen equally often (memorisation needs all of them), each cut into
        batches of similar length, in random order: a batch pads to its longest sample, and on mixed data (short
        questions, long documents) random batches compute ~2.5x the real tokens, grouped ones ~1.05x."""
        lengths = list(lengths) or [0] * n_forget
        batches: list[list[int]] = []
        for _ in range(steps):
            if not batches:
                # one mega-batch per epoch: every sample is grouped with its nearest lengths
                order = get_length_grouped_indices(lengths, batch_size, math.ceil(n_forget / batch_size), generator)
                cut = [order[i:i + batch_size] for i in range(0, n_forget, batch_size)]
                batches = [cut[i] for i in torch.randperm(len(cut), generator=generator).tolist()]
            yield batches.pop(0), []
