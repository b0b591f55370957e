"""Loss maths shared by several methods, written once."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from unlearning.batching import IGNORE, Batch


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of each next label token and the mask of tokens that count (answer tokens only)."""
    logits, labels = logits[:, :-1].float(), labels[:, 1:]
    mask = labels != IGNORE
    logp = -F.cross_entropy(logits.transpose(1, 2), labels.masked_fill(~mask, 0), reduction="none")
    return logp * mask, mask


def forward(model: PreTrainedModel, batch: Batch, **kwargs):
    """The model on a batch; logits cover the positions `batch["labels"]` covers (see batching.answer_logits_only)."""
    if "logits_to_keep" in batch:
        kwargs["logits_to_keep"] = batch["logits_to_keep"]
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **kwargs)


def sample_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of each sample's answer tokens, shape [batch]."""
    logp, mask = token_logprobs(logits, labels)
    return -logp.sum(1) / mask.sum(1).clamp(min=1)


def sequence_logprob(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log pi(y|x): summed answer-token log-probability of each sample, shape [batch]."""
    return token_logprobs(logits, labels)[0].sum(1)


def nll(model: PreTrainedModel, batch: Batch) -> torch.Tensor:
    return sample_nll(forward(model, batch).logits, batch["labels"])


@torch.no_grad()
def reference_logits(reference: PreTrainedModel, batch: Batch) -> torch.Tensor:
    return forward(reference, batch).logits


def kl_to_reference(logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over answer tokens of KL(reference || model), per sample: how far the model drifted from the original."""
    mask = (labels[:, 1:] != IGNORE).float()
    logp = F.log_softmax(logits[:, :-1].float(), -1)
    ref_logp = F.log_softmax(ref_logits[:, :-1].float(), -1)
    kl = (ref_logp.exp() * (ref_logp - logp)).sum(-1)
    return (kl * mask).sum(1) / mask.sum(1).clamp(min=1)


def log_ratio(logits: torch.Tensor, reference: PreTrainedModel, batch: Batch) -> torch.Tensor:
    """log pi_theta(y|x) - log pi_ref(y|x) per sample: how much more likely the model makes the answer than the original did."""
    labels = batch["labels"]
    return sequence_logprob(logits, labels) - sequence_logprob(reference_logits(reference, batch), labels)


def npo_loss(logratio: torch.Tensor, beta: float) -> torch.Tensor:
    """NPO's forget term (2/beta) * mean softplus(beta * logratio): DPO with a rejected answer and no preferred one.

    softplus(x) = -logsigmoid(-x). It behaves like gradient ascent while the answer is still likely and fades to 0 once
    the model already finds it less likely than the original did, which is what prevents the collapse. SimNPO passes
    a reference-free, length-normalised log-probability instead of a log-ratio.
    """
    return 2 / beta * F.softplus(beta * logratio).mean()


def dpo_loss(chosen_logratio: torch.Tensor, rejected_logratio: torch.Tensor, beta: float) -> torch.Tensor:
    """DPO: -mean logsigmoid(beta * (chosen - rejected)), each argument a per-sample log pi_theta - log pi_ref."""
    return -F.logsigmoid(beta * (chosen_logratio - rejected_logratio)).mean()


def masked_mse(hidden: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Squared distance per hidden unit, averaged over each sample's real (unpadded) tokens, then over the batch."""
    per_token = (hidden.float() - target.float()).pow(2).mean(-1)
    mask = mask.float()
    return ((per_token * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()
