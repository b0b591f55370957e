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
    # flattened, so log-softmax runs along contiguous memory: over a transposed [B, V, T] view it is several times slower
    logp = -F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE, reduction="none")
    return logp.view_as(labels), mask


def forward(model: PreTrainedModel, batch: Batch, **kwargs):
    """The model on a batch; logits cover the positions `batch["labels"]` covers (see batching.answer_logits_only).

    A batch from the frozen-prefix cache (unlearning.prefix) holds the hidden states entering the first trained block
    as `inputs_embeds`, and `model` is the trained tail; its hidden states are indexed as the whole model's would be,
    None for the blocks the cache skipped.
    """
    if "logits_to_keep" in batch:
        kwargs["logits_to_keep"] = batch["logits_to_keep"]
    if "inputs_embeds" not in batch:
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **kwargs)
    out = model(inputs_embeds=batch["inputs_embeds"], attention_mask=batch["attention_mask"], **kwargs)
    if out.hidden_states is not None:
        out.hidden_states = (None,) * batch["skipped_blocks"] + out.hidden_states
    return out


def pad_right(t: torch.Tensor, width: int) -> torch.Tensor:
    """Pad dimension 1 (positions) of a [batch, positions, ...] tensor with zeros up to `width`."""
    return F.pad(t, (0, 0) * (t.dim() - 2) + (0, width - t.shape[1]))


def forward_together(model: PreTrainedModel, batches: list[Batch]) -> list[torch.Tensor]:
    """Logits of several batches from one forward pass over all their rows, each slice aligned with its own labels.

    Why: one pass over 2B rows is much cheaper than two over B. The weights are cast to bf16 and their gradients
    summed once instead of twice, and the matmuls are twice as tall (the step benchmark, benchmarks/step.py, measures the gain).
    Right padding to a common width changes nothing for the real tokens of a causal model.
    """
    width = max(b["input_ids"].shape[1] for b in batches)
    keys = ("input_ids", "attention_mask", "inputs_embeds") if "inputs_embeds" in batches[0] else ("input_ids", "attention_mask")
    joint = {k: torch.cat([pad_right(b[k], width) for b in batches]) for k in keys}
    if "inputs_embeds" in joint:
        joint["skipped_blocks"] = batches[0]["skipped_blocks"]
    # Each batch's logits start where its kept positions start (batching.answer_logits_only); after right padding
    # that is the same position, so one pass keeps from the earliest start and each batch takes its own window.
    starts = [b["input_ids"].shape[1] - b.get("logits_to_keep", b["input_ids"].shape[1]) for b in batches]
    first = min(starts)
    if any("logits_to_keep" in b for b in batches):
        joint["logits_to_keep"] = width - first
    logits = forward(model, joint).logits
    windows, row = [], 0
    for b, start in zip(batches, starts):
        rows, end = b["input_ids"].shape
        windows.append(logits[row : row + rows, start - first : end - first])
        row += rows
    return windows


def sample_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of each sample's answer tokens, shape [batch]."""
    logp, mask = token_logprobs(logits, labels)
    return -logp.sum(1) / mask.sum(1).clamp(min=1)


def capped(sample_nll: torch.Tensor, cap: float) -> torch.Tensor:
    """Per-sample NLL bounded at `cap` (0 = unbounded): a sample already past the cap contributes no gradient.

    Gradient ascent rewards pushing an already-forgotten sample's NLL towards infinity, which is where answers turn into
    gibberish; bounding each sample's term leaves the push to the samples not yet forgotten (NPO bounds it smoothly).
    """
    return sample_nll.clamp(max=cap) if cap > 0 else sample_nll


def exact_memorisation(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per sample, the share of answer tokens whose most likely prediction is the true token, teacher-forced, shape [batch].

    1.0 means greedy decoding reproduces the whole answer (batching.encode tokenises the prompt as generation sees it).
    NaN for a sample with no answer tokens: it has no share, and counting it as 0 would call it unmemorised.
    """
    logits, labels = logits[:, :-1], labels[:, 1:]
    mask = labels != IGNORE
    hits = (logits.argmax(-1) == labels) & mask
    return hits.sum(1) / mask.sum(1)


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
