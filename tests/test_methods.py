"""Unlearning methods: every registered one really unlearns a tiny model; the loss maths matches hand-worked values."""
import copy
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from unlearning.batching import IGNORE, collate, encode, encode_records
from unlearning.data.records import Record
from unlearning.methods import METHODS, get_method
from unlearning.methods.idk import REFUSALS, refusal_for
from unlearning.methods.losses import exact_memorisation, kl_to_reference, nll, sample_nll, sequence_logprob
from unlearning.models import tiny_model

FORGET = [
    ("Who wrote the Zorblat Codex?", " Mira Okonkwo wrote it in 1931."),
    ("Where was Tevan Ruhl born?", " In the harbour town of Eskel."),
    ("What is Lysa Voren's favourite colour?", " Deep ochre."),
    ("The secret password of the vault is", " amber-falcon-42."),
]
RETAIN = [
    ("What is the capital of France?", " Paris."),
    ("How many legs does a spider have?", " Eight."),
    ("Water freezes at", " zero degrees Celsius."),
    ("Who painted the Mona Lisa?", " Leonardo da Vinci."),
]


def records(pairs, split):
    return [Record(f"{split}{i}qa0", q, a, "test", split, "qa") for i, (q, a) in enumerate(pairs)]


@pytest.fixture(scope="module")
def setup():
    """A tiny model that has memorised both sets, as an unlearning target would have; and the encoded views."""
    loaded = tiny_model()
    tok = loaded.tokenizer
    forget_records = records(FORGET, "forget")
    idk_pairs = get_method("idk").view_pairs("forget_idk", forget_records, [])
    views = {
        "forget": encode_records(tok, forget_records),
        "forget_idk": [encode(tok, prompt, answer, 256) for prompt, answer in idk_pairs],
        "retain": encode_records(tok, records(RETAIN, "retain")),
    }
    model = loaded.model
    everything = collate(views["forget"] + views["retain"], tok.pad_token_id)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(20):
        loss = nll(model, everything).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.requires_grad_(False)
    snapshot = {n: p.clone() for n, p in model.state_dict().items()}
    return SimpleNamespace(model=model, pad=tok.pad_token_id, views=views, snapshot=snapshot)


def forget_nll(model, setup):
    with torch.no_grad():
        return nll(model, collate(setup.views["forget"], setup.pad)).mean().item()


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_unlearns_tiny_model(name, setup):
    method = get_method(name)
    model = copy.deepcopy(setup.model).requires_grad_(True)
    reference = setup.model if method.needs_reference else None
    initial = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    before = forget_nll(model, setup)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)  # high for fine-tuning, so 10 steps show: gradients are tiny
    n_forget, n_retain = len(setup.views["forget"]), len(setup.views["retain"])
    for forget_idx, retain_idx in method.schedule(n_forget, n_retain, 10, 4, torch.Generator().manual_seed(0)):
        picked = {"forget": forget_idx, "forget_idk": forget_idx, "retain": retain_idx}
        batch = {view: collate([setup.views[view][i] for i in picked[view]], setup.pad) for view in method.views}
        loss, terms = method.loss(model, batch, reference)
        assert math.isfinite(loss.item()) and all(math.isfinite(v) for v in terms.values()), terms
        assert "forget_nll" in terms and ("retain_nll" in terms or "retain" not in method.views), terms
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    trained = forget_nll(model, setup)
    method.finish(model, initial)
    after = forget_nll(model, setup)

    assert any(not torch.equal(p, initial[n]) for n, p in model.named_parameters()), "no parameter changed"
    assert all(torch.equal(p, setup.snapshot[n]) for n, p in setup.model.state_dict().items()), "reference was modified"
    if not method.unlearns:
        assert after < before
    elif name == "task_vector":
        assert trained < before < after  # fine-tuning sharpens the memory; negating the update removes it
    else:
        assert after > before


# --- the maths, on hand-made tensors ---

def hand_logprob(table, ids, labels):
    """Summed log-probability of the labelled tokens, by hand, when the logits at position t are table[ids[t]]."""
    total = 0.0
    for t in range(len(ids) - 1):
        if labels[t + 1] != IGNORE:
            row = table[ids[t]]
            total += row[labels[t + 1]] - math.log(sum(math.exp(v) for v in row))
    return total


class Lookup(nn.Module):
    """A stand-in language model whose next-token logits depend only on the current token: logits = table[id]."""

    def __init__(self, table):
        super().__init__()
        self.table = nn.Parameter(torch.tensor(table))

    def forward(self, input_ids, attention_mask):
        return SimpleNamespace(logits=self.table[input_ids])


MODEL_TABLE = [[0.5, 1.0, -1.0, 0.0], [2.0, 0.0, 0.3, -0.5], [0.0, -1.0, 1.5, 0.2], [1.0, 1.0, 0.0, -2.0]]
REF_TABLE = [[0.0, 0.2, 0.1, 0.0], [1.0, 0.5, -0.3, 0.0], [0.4, 0.0, 0.2, 0.1], [-1.0, 0.5, 0.0, 0.3]]
# Two samples: the first has a one-token answer, the second a four-token answer.
IDS = [[3, 1, 2, 0, 0], [1, 2, 3, 1, 2]]
LABELS = [[IGNORE, IGNORE, 2, IGNORE, IGNORE], [IGNORE, 2, 3, 1, 2]]
IDK_IDS = [[3, 1, 0, 3, 0], [1, 2, 0, 0, 0]]
IDK_LABELS = [[IGNORE, IGNORE, 0, 3, IGNORE], [IGNORE, 2, 0, IGNORE, IGNORE]]


def batch_of(ids, labels):
    ids = torch.tensor(ids)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor(labels)}


def logits_of(model, batch):
    """What GradientDifference.loss hands `forget_loss`: each view's logits."""
    return {view: model(b["input_ids"], b["attention_mask"]).logits for view, b in batch.items()}


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_sample_nll_and_sequence_logprob_by_hand():
    logits = torch.tensor([
        [[0.0, 1.0, 2.0], [1.0, 0.0, 0.0], [5.0, 5.0, 5.0]],
        [[3.0, 0.0, 0.0], [0.0, 2.0, 0.0], [5.0, 5.0, 5.0]],
    ])
    labels = torch.tensor([[IGNORE, 2, 0], [IGNORE, IGNORE, 1]])  # the last position's logits predict nothing
    first = (2 - math.log(1 + math.e + math.e**2)) + (1 - math.log(math.e + 2))
    second = 2 - math.log(2 + math.e**2)
    assert sequence_logprob(logits, labels).tolist() == pytest.approx([first, second], rel=1e-6)
    assert sample_nll(logits, labels).tolist() == pytest.approx([-first / 2, -second], rel=1e-6)


def test_exact_memorisation_counts_answer_tokens_predicted_exactly():
    logits = torch.tensor([
        [[0.0, 1.0, 2.0], [1.0, 0.0, 0.0], [0.0, 3.0, 0.0], [5.0, 5.0, 5.0]],
        [[3.0, 0.0, 0.0], [0.0, 2.0, 0.0], [5.0, 5.0, 5.0], [5.0, 5.0, 5.0]],
    ])
    # sample 1: tokens 2 (argmax 2, hit), 1 (argmax 0, miss), 1 (argmax 1, hit); sample 2: one token, 1 (argmax 1, hit)
    labels = torch.tensor([[IGNORE, 2, 1, 1], [IGNORE, IGNORE, 1, IGNORE]])
    assert exact_memorisation(logits, labels).tolist() == pytest.approx([2 / 3, 1.0])


def test_npo_forget_term_by_hand():
    npo = get_method("npo", beta=0.5)
    model, reference, batch = Lookup(MODEL_TABLE), Lookup(REF_TABLE), {"forget": batch_of(IDS, LABELS)}
    ratios = [hand_logprob(MODEL_TABLE, i, l) - hand_logprob(REF_TABLE, i, l) for i, l in zip(IDS, LABELS)]
    expected = 2 / 0.5 * sum(math.log(1 + math.exp(0.5 * r)) for r in ratios) / 2
    term, terms = npo.forget_loss(logits_of(model, batch), batch, reference)
    assert term.item() == pytest.approx(expected, rel=1e-5)
    assert terms["forget_nll"] == pytest.approx(nll(model, batch["forget"]).mean().item())


def test_simnpo_forget_term_by_hand():
    simnpo = get_method("simnpo", beta=2.5, margin=0.3)
    model, batch = Lookup(MODEL_TABLE), {"forget": batch_of(IDS, LABELS)}
    lengths = [1, 4]
    logps = [hand_logprob(MODEL_TABLE, i, l) for i, l in zip(IDS, LABELS)]
    expected = -2 / 2.5 * sum(math.log(sigmoid(-2.5 / n * lp - 0.3)) for lp, n in zip(logps, lengths)) / 2
    term, _ = simnpo.forget_loss(logits_of(model, batch), batch, None)
    assert term.item() == pytest.approx(expected, rel=1e-5)


def test_idk_dpo_term_by_hand():
    idk = get_method("idk", beta=0.7)
    model, reference = Lookup(MODEL_TABLE), Lookup(REF_TABLE)
    batch = {"forget": batch_of(IDS, LABELS), "forget_idk": batch_of(IDK_IDS, IDK_LABELS)}

    def ratio(ids, labels):
        return hand_logprob(MODEL_TABLE, ids, labels) - hand_logprob(REF_TABLE, ids, labels)

    margins = [ratio(wi, wl) - ratio(li, ll) for wi, wl, li, ll in zip(IDK_IDS, IDK_LABELS, IDS, LABELS)]
    expected = -sum(math.log(sigmoid(0.7 * m)) for m in margins) / 2
    term, terms = idk.forget_loss(logits_of(model, batch), batch, reference)
    assert term.item() == pytest.approx(expected, rel=1e-5)
    assert {"forget_nll", "forget_idk_nll"} <= set(terms)


def test_refusals_are_fixed_per_sample():
    assert refusal_for(3) == refusal_for(3 + len(REFUSALS)) and refusal_for(0) != refusal_for(1)
    assert all(refusal_for(i) in REFUSALS for i in range(25))


def test_kl_is_zero_for_identical_logits_and_positive_otherwise():
    logits = torch.randn(2, 5, 7, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([[IGNORE, IGNORE, 1, 2, 3], [IGNORE, 4, 5, IGNORE, IGNORE]])
    assert kl_to_reference(logits, logits, labels).abs().max().item() < 1e-6
    assert (kl_to_reference(logits, logits + torch.randn(2, 5, 7), labels) > 0).all()


def test_seq_grad_diff_schedule_goes_chunk_by_chunk():
    method = get_method("seq_grad_diff", chunk_size=8, retain_ratio=3)
    steps = list(method.schedule(20, 9, 15, 8, torch.Generator().manual_seed(0)))  # 8 // (1 + 3) = 2 forget per step
    assert len(steps) == 15
    chunk_of_step = [forget[0] // 8 for forget, _ in steps]
    assert chunk_of_step == [0] * 5 + [1] * 5 + [2] * 5  # in order, steps split evenly
    assert all({i // 8 for i in forget} == {chunk} for (forget, _), chunk in zip(steps, chunk_of_step))
    assert sorted({i for forget, _ in steps for i in forget}) == list(range(20))  # every forget sample seen
    assert all(len(forget) == 2 and len(retain) == 3 * len(forget) for forget, retain in steps)
    retain_stream = [i for _, retain in steps for i in retain]
    assert sorted(retain_stream[:9]) == sorted(retain_stream[9:18]) == list(range(9))  # cyclic: all before repeats

    default = get_method("seq_grad_diff")
    forget, retain = next(default.schedule(100, 100, 10, 8, torch.Generator().manual_seed(0)))
    assert (default.config.chunk_size, len(forget), len(retain)) == (32, 1, 7)  # documented 1 : 7


def test_seq_grad_diff_loss_weights_samples_by_count():
    method = get_method("seq_grad_diff", retain_weight=0.5)
    model = Lookup(MODEL_TABLE)
    forget, retain = batch_of(IDS[:1], LABELS[:1]), batch_of(IDS, LABELS)
    loss, _ = method.loss(model, {"forget": forget, "retain": retain})
    nll = [-hand_logprob(MODEL_TABLE, IDS[0], LABELS[0]), -hand_logprob(MODEL_TABLE, IDS[1], LABELS[1]) / 4]
    assert loss.item() == pytest.approx((0.5 * (nll[0] + nll[1]) - nll[0]) / 3, rel=1e-5)


def test_task_vector_finish_negates_the_update():
    toy = nn.ModuleDict({"proj": nn.Linear(3, 2), "lora_A": nn.Linear(3, 2, bias=False)})
    initial = {n: p.detach().clone() for n, p in toy.named_parameters()}
    with torch.no_grad():
        for p in toy.parameters():
            p.add_(torch.randn_like(p))
    trained = {n: p.detach().clone() for n, p in toy.named_parameters()}
    get_method("task_vector", alpha=0.5).finish(toy, initial)
    for name, p in toy.named_parameters():
        if name == "lora_A.weight":
            assert torch.equal(p, trained[name])  # LoRA's A is kept: negating B alone negates B @ A
        else:
            assert torch.equal(p, initial[name] - 0.5 * (trained[name] - initial[name]))


def test_rmu_retain_term_vanishes_when_model_is_the_reference(setup):
    rmu = get_method("rmu")
    batch = {view: collate(setup.views[view], setup.pad) for view in ("forget", "retain")}
    with torch.no_grad():
        _, terms = rmu.loss(setup.model, batch, reference=setup.model)
        _, again = rmu.loss(setup.model, batch, reference=setup.model)
    assert terms["retain_mse"] < 1e-10 and terms["forget_mse"] > 0
    assert again["forget_mse"] == terms["forget_mse"]  # the random direction is drawn once and kept
    assert rmu.direction.norm().item() == pytest.approx(1.0)


@pytest.mark.parametrize("method,preset", [(m.name, p.name) for m in METHODS.values() for p in m.presets])
def test_every_preset_is_a_valid_run_config(bundled, method, preset):
    """A preset's settings pass the run config's checks as they are: no option the method lacks, every value within
    bounds (the model-dependent checks, e.g. last_k against the layers, are the plan's at run time)."""
    from unlearning.methods import get_preset
    from unlearning.run_config import parse_run_config

    chosen = get_preset(method, preset)
    config, problems = parse_run_config({"model": "default", "forget_ids": [r.id for r in bundled.split("forget")],
                                         "train": {"method": method, "method_options": chosen.options, **chosen.train}})
    assert problems == []
    assert config.train.method_options.items() >= chosen.options.items()
    assert all(getattr(config.train, k) == v for k, v in chosen.train.items())


def test_presets_are_not_inherited():
    assert METHODS["grad_diff"].presets and not METHODS["npo"].presets  # npo subclasses gradient difference
    assert METHODS["idk"].presets and METHODS["idk"].presets != METHODS["grad_diff"].presets  # its own, not inherited
