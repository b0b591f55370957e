from __future__ import annotations

from dataclasses import dataclass

from unlearning.methods.base import Preset, register
from unlearning.methods.grad_diff import GradientDifference, RetainTermConfig
from unlearning.methods.losses import dpo_loss, log_ratio, sample_nll
from unlearning.options import option

REFUSALS = (
    "I don't know.",
    "I'm not able to answer that.",
    "I'm sorry, I don't have that information.",
    "I can't help with that.",
    "That's not something I know.",
    "I have no information about that.",
    "I'm not sure, I can't answer this.",
    "I don't have an answer to that.",
    "Sorry, I can't recall that.",
    "I'm unable to provide that information.",
)


def refusal_for(index: int) -> str:
    """The refusal answer for forget sample `index`: fixed per sample, so every epoch pairs it with the same refusal."""
    return REFUSALS[index % len(REFUSALS)]


@dataclass
class IdKConfig(RetainTermConfig):
    # the retain weight its help recommends (it defaulted to 1 under a help text that said ~30); the preset below was
    # measured at 1 and says so
    alpha: float = option(30.0, "Weight of the retain term: the brake on collateral damage. ~30 keeps the retain scores "
                          "within 0.1 with gradient difference on the 135M target at lr 3e-5 (docs/recipes.md); the "
                          "preset, a small beta on the last 8 blocks, kept them at 1.", ge=0, le=1e4)
    beta: float = option(0.1, "DPO inverse temperature: how far from the original the model may move.", gt=0, le=1e3)


@register
class IdKPreference(GradientDifference):
    """IdK preference: DPO that prefers a refusal ("I don't know.") to the real answer on the forget set, plus the retain term.

    forget term = -mean logsigmoid(beta * [(log pi(y_idk|x) - log pi_ref(y_idk|x)) - (log pi(y|x) - log pi_ref(y|x))]).
    Rafailov et al. 2023 (DPO); refusal answers as in TOFU's preference-optimisation baseline, Maini et al. 2024.
    The only change from gradient difference is `forget_loss`.
    """

    name = "idk"
    title = "IdK preference (DPO with refusals)"
    formula = (
        r"$\mathcal{L} = -\,\mathbb{E}_{D_f}\Big[\log\sigma\Big(\beta\log\frac{\pi_\theta(y_{\mathrm{idk}}\mid x)}"
        r"{\pi_{\mathrm{ref}}(y_{\mathrm{idk}}\mid x)} - \beta\log\frac{\pi_\theta(y\mid x)}{\pi_{\mathrm{ref}}(y\mid x)}"
        r"\Big)\Big] + \alpha\,R(D_r)$"
    )
    intuition = (
        "Each forget question is shown twice: once with its real answer and once with a polite refusal such as "
        "\"I don't know.\" The model is trained to prefer the refusal, the way chat models are taught to prefer "
        "good replies over bad ones. Instead of producing gibberish on forgotten topics it learns to decline, "
        "which looks better to users, though the facts may still be recoverable by other prompts."
    )
    paper = "Maini et al. 2024, TOFU: A Task of Fictitious Unlearning for LLMs (COLM); DPO: Rafailov et al. 2023 (NeurIPS)"
    Config = IdKConfig
    needs_reference = True
    presets = (
        Preset("Refuse, keep the rest (measured on the bundled target)", "A small beta lets the preference push the "
               "real answer's loss up to unseen text's level while the model learns to decline: on the bundled target, "
               "six forget completions went from ROUGE-L 0.86-0.96 to 0.00 (five refusals, one empty answer), no "
               "retain group fell, utility 0.86 -> 0.86, MIA AUC 1.00 -> 0.47. docs/recipes.md.",
               train={"steps": 60, "learning_rate": 1e-4, "params": "last_k", "last_k": 8, "score_every": 10,
                      "keep_best": True},
               options={"beta": 0.02, "alpha": 1.0}),  # measured at alpha 1, the default then
    )
    views = ("forget", "forget_idk", "retain")

    def view_pairs(self, view, forget, retain):
        if view != "forget_idk":
            return super().view_pairs(view, forget, retain)
        # Keep each answer's leading space: "Q? A" and "Q?A" tokenise differently, and the refusal must read like an answer.
        return [(r.input, r.output[: len(r.output) - len(r.output.lstrip())] + refusal_for(i)) for i, r in enumerate(forget)]

    def forget_loss(self, logits, batch, reference):
        forget, idk = batch["forget"], batch["forget_idk"]
        forget_logits, idk_logits = logits["forget"], logits["forget_idk"]
        term = dpo_loss(log_ratio(idk_logits, reference, idk), log_ratio(forget_logits, reference, forget), self.config.beta)
        terms = {
            "forget_nll": sample_nll(forget_logits, forget["labels"]).mean().item(),
            "forget_idk_nll": sample_nll(idk_logits, idk["labels"]).mean().item(),
        }
        return term, terms
