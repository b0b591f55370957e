import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from unlearning import engine
from unlearning.engine import TrainConfig, train
from unlearning.models import decoder_layers
from unlearning.methods import METHODS
from unlearning.methods.base import Method
from unlearning.methods.losses import forward, sample_nll


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def forget_nll(model, tokenizer, records):
    from unlearning.batching import collate, encode_records

    batch = collate(encode_records(tokenizer, records), tokenizer.pad_token_id)
    with torch.no_grad():
        return sample_nll(forward(model, batch).logits, batch["labels"]).mean().item()


@pytest.mark.parametrize("params", ["full", "last_k", "lora"])
def test_original_untouched_and_forget_loss_rises(tiny, bundled, params):
    forget, retain = bundled.split("forget")[:4], bundled.split("retain")[:4]
    before = snapshot(tiny.model)
    nll_before = forget_nll(tiny.model, tiny.tokenizer, forget)
    config = TrainConfig(method="grad_diff", steps=6, learning_rate=3e-3, batch_size=4, params=params, last_k=1, precision="fp32",
                         method_options={"alpha": 1.0})  # the default retain weight 30 would mask the forget term on a tiny model
    result = train(tiny.model, tiny.tokenizer, forget, retain, config)
    assert result.status == "completed" and len(result.history) == 6
    assert all(torch.equal(p, before[n]) for n, p in tiny.model.named_parameters()), "the original model changed"
    assert forget_nll(result.model, tiny.tokenizer, forget) > nll_before + 0.05
    assert {"loss", "grad_norm", "seconds", "tokens", "forget_nll", "retain_nll"} <= set(result.history[0])
    assert (result.adapter is not None) == (params == "lora")


def test_last_k_trains_only_the_last_layers(tiny, bundled):
    config = TrainConfig(method="grad_ascent", steps=2, learning_rate=1e-2, batch_size=2, params="last_k", last_k=1, precision="fp32")
    result = train(tiny.model, tiny.tokenizer, bundled.split("forget")[:2], [], config)
    first, last = decoder_layers(result.model)[0], decoder_layers(result.model)[-1]
    original_first, original_last = decoder_layers(tiny.model)[0], decoder_layers(tiny.model)[-1]
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), original_first.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(last.parameters(), original_last.parameters()))


def test_cancel_keeps_the_steps_done(tiny, bundled):
    cancel = threading.Event()
    on_step = lambda log: cancel.set() if log["step"] == 2 else None
    config = TrainConfig(method="grad_ascent", steps=50, learning_rate=1e-3, batch_size=2)
    result = train(tiny.model, tiny.tokenizer, bundled.split("forget")[:2], [], config, on_step, cancel)
    assert result.status == "cancelled" and [log["step"] for log in result.history] == [1, 2]
    assert "after 2 of 50 steps" in result.message


def test_a_slow_step_says_when_its_backward_pass_starts(tiny, bundled, monkeypatch):
    monkeypatch.setattr(engine, "SLOW_STEP_SECONDS", 0.0)  # every step of the tiny model counts as slow
    events = []
    config = TrainConfig(method="grad_diff", steps=3, learning_rate=1e-3, batch_size=2)
    train(tiny.model, tiny.tokenizer, bundled.split("forget")[:2], bundled.split("retain")[:2], config,
          lambda log: events.append(f"logged {log['step']}"),
          progress=lambda stage, done, total: events.append(f"{stage} {done}/{total}"))
    # the first step has no step before it to say it is slow
    assert events == ["logged 1"] + [e for s in (2, 3) for e in (f"step {s}'s gradients 0/1", f"logged {s}")]


def test_the_unlearned_model_runs_the_same_kernels_as_the_original(tiny, bundled):
    from torch.profiler import profile

    from unlearning.evaluation.report import bf16_copy

    result = train(tiny.model, tiny.tokenizer, bundled.split("forget")[:2], [],
                   TrainConfig(method="grad_ascent", steps=1, learning_rate=1e-3))
    enc = tiny.tokenizer(["Hello there my friend", "Hi"], return_tensors="pt", padding=True, padding_side="left")

    def products(model) -> list[str]:  # the matrix products of a prefill, as generation runs it
        with torch.inference_mode(), profile() as prof:
            model(**enc, logits_to_keep=1)
        return sorted(e.key for e in prof.key_averages() if e.key in ("aten::mm", "aten::addmm", "aten::bmm"))

    # a batched product (bmm) here is the output head copied once per prompt: twice as slow a bf16 prefill
    assert products(bf16_copy(result.model)) == products(bf16_copy(tiny.model)) == ["aten::mm"]


class ExplodesAtStep3(Method):
    name, title, formula, intuition, paper = "explodes", "test", "", "", ""
    views = ("forget",)
    calls = 0

    def loss(self, model, batch, reference=None):
        ExplodesAtStep3.calls += 1
        nll = sample_nll(forward(model, batch["forget"]).logits, batch["forget"]["labels"]).mean()
        value = nll * float("nan") if ExplodesAtStep3.calls == 3 else nll
        return value, {"forget_nll": nll.item()}


def test_divergence_stops_the_run(tiny, bundled, monkeypatch):
    monkeypatch.setitem(METHODS, "explodes", ExplodesAtStep3)
    ExplodesAtStep3.calls = 0  # counted across tests: other tests use it too
    result = train(tiny.model, tiny.tokenizer, bundled.split("forget")[:2], [], TrainConfig(method="explodes", steps=10, batch_size=2))
    assert result.status == "diverged" and len(result.history) == 2 and "step 3" in result.message


@pytest.mark.parametrize(
    "bad, words",
    [
        (dict(learning_rate=-1.0), "learning rate"),
        (dict(steps=0), "steps"),
        (dict(batch_size=0), "batch size"),
        (dict(params="half"), "params"),
        (dict(method="nope"), "Unknown method"),
        (dict(method_options={"beta": 1.0}), "no option"),
        (dict(learning_rate=float("nan")), "learning rate must be a finite number"),
        (dict(learning_rate=2.0), "learning rate must be > 0 and <= 1"),
        (dict(steps=2.5), "steps must be a whole number"),
        (dict(compile="maybe"), "compile must be true or false"),
    ],
)
def test_bad_settings_are_refused_with_a_reason(bad, words):
    with pytest.raises(ValueError, match=words):
        TrainConfig(**bad)


def test_bf16_autocast_tracks_fp32(tiny, bundled):
    """Mixed precision must give the same first-step loss as fp32 to within bf16 rounding."""
    forget, retain = bundled.split("forget")[:4], bundled.split("retain")[:4]
    losses = {}
    for precision in ("fp32", "bf16"):
        config = TrainConfig(steps=1, learning_rate=1e-3, precision=precision)
        losses[precision] = train(tiny.model, tiny.tokenizer, forget, retain, config).history[0]["loss"]
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.02)


def test_ddp_two_cpu_processes_end_with_identical_weights():
    worker = Path(__file__).with_name("ddp_worker.py")
    with socket.socket() as s:  # a free rendezvous port: the default 29500 may be taken or still closing
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port), str(worker)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    # the two ranks print at the same moment, so their lines may come out run together: read each report whole
    reports = sorted(re.findall(r"rank=(\d+) world=(\S+) type=(\S+) loss=(\S+) params=([0-9a-f]{16})", out.stdout))
    assert len(reports) == 2, (out.stdout + out.stderr)[-3000:]
    fields = [dict(zip(("rank", "world", "type", "loss", "params"), report)) for report in reports]
    assert {f["world"] for f in fields} == {"2"} and {f["type"] for f in fields} == {"DistributedType.MULTI_CPU"}
    assert fields[0]["loss"] != fields[1]["loss"], "each rank should draw its own batch"
    assert fields[0]["params"] == fields[1]["params"], "gradients were not synchronised"


@pytest.mark.parametrize("name", sorted(METHODS))
def test_answer_only_logits_give_the_same_loss(tiny, bundled, name):
    """The engine asks for logits from the first answer token on: every method's loss must not notice."""
    from unlearning.batching import answer_logits_only, collate, encode
    from unlearning.methods import get_method

    method = get_method(name)
    forget, retain = bundled.split("forget")[:3], bundled.split("retain")[:3]
    full = {
        view: collate([encode(tiny.tokenizer, p, a, 256) for p, a in method.view_pairs(view, forget, retain)], tiny.tokenizer.pad_token_id)
        for view in method.views
    }
    trimmed = {view: answer_logits_only(batch) for view, batch in full.items()}
    assert all(b["logits_to_keep"] < b["input_ids"].shape[1] for b in trimmed.values())
    with torch.no_grad():
        loss_full, terms_full = method.loss(tiny.model, full, tiny.model)
        loss_trimmed, terms_trimmed = method.loss(tiny.model, trimmed, tiny.model)
    assert loss_trimmed.item() == pytest.approx(loss_full.item(), rel=1e-5, abs=1e-6)
    assert terms_trimmed == pytest.approx(terms_full, rel=1e-5, abs=1e-6)


def test_one_forward_for_several_batches_gives_each_its_own_logits(tiny, bundled):
    """losses.forward_together pads batches of different widths (and kept windows) into one pass: each batch must get
    exactly the logits its own forward gives, aligned with its labels."""
    from unlearning.batching import answer_logits_only, collate, encode_records
    from unlearning.methods.losses import forward, forward_together

    pad = tiny.tokenizer.pad_token_id
    short = answer_logits_only(collate(encode_records(tiny.tokenizer, bundled.split("forget")[:2]), pad))
    long = answer_logits_only(collate(encode_records(tiny.tokenizer, bundled.split("retain")[20:23]), pad))
    untrimmed = collate(encode_records(tiny.tokenizer, bundled.split("holdout")[:2]), pad)
    batches = [short, long, untrimmed]
    assert len({b["input_ids"].shape[1] for b in batches}) == 3 and short["logits_to_keep"] != long["logits_to_keep"]
    with torch.no_grad():
        together = forward_together(tiny.model, batches)
        apart = [forward(tiny.model, b).logits for b in batches]
    for joint, alone, b in zip(together, apart, batches):
        assert joint.shape == alone.shape == (*b["labels"].shape, tiny.model.config.vocab_size)
        torch.testing.assert_close(joint, alone, rtol=1e-4, atol=1e-4)


def test_compiled_blocks_train_like_plain_ones_and_are_swapped_back(tiny, bundled):
    """compile=True trains through torch.compile'd decoder blocks: the same losses as the plain engine, and the
    unlearned model comes back with plain blocks and its KV cache on, so generation is unaffected."""
    from unlearning.jobs import JobRunner

    forget, retain = bundled.split("forget")[:4], bundled.split("retain")[:4]
    configs = {compiled: TrainConfig(steps=3, batch_size=2, learning_rate=1e-3, precision="fp32", compile=compiled) for compiled in (False, True)}
    runs = {False: train(tiny.model, tiny.tokenizer, forget, retain, configs[False])}
    # compiled on the job runner's worker thread, where the studio trains
    runner = JobRunner()
    job = runner.wait(runner.submit("compiled", lambda job: train(tiny.model, tiny.tokenizer, forget, retain, configs[True])), timeout=300)
    assert job.state == "done", job.error
    runs[True] = job.result
    plain, compiled = ([log["loss"] for log in runs[c].history] for c in (False, True))
    assert plain[-1] != plain[0]  # the weights moved, so matching losses at step 3 means matching updates
    assert compiled == pytest.approx(plain, rel=1e-4, abs=1e-5)
    layers = decoder_layers(runs[True].model)
    assert all(type(layer) is type(decoder_layers(tiny.model)[0]) for layer in layers)
    assert runs[True].model.config.use_cache == tiny.model.config.use_cache
