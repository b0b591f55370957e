"""The frozen-prefix cache trains exactly as the plain engine does, for every method, on Llama and OLMo blocks."""
import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, Olmo2Config, OlmoConfig, Qwen2Config

from unlearning import prefix as prefix_module
from unlearning.batching import collate, encode
from unlearning.engine import TrainConfig, train
from unlearning.models import decoder_layers
from unlearning.methods import METHODS, get_method
from unlearning.methods.losses import forward
from unlearning.monitor import Monitor
from unlearning.prefix import PrefixCache

LAYERS, K = 4, 2


def build(config_class, tokenizer):
    config = config_class(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=LAYERS, num_attention_heads=4,
        num_key_value_heads=2, tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config).eval()


@pytest.fixture(scope="module", params=[LlamaConfig, OlmoConfig, Olmo2Config], ids=["llama", "olmo", "olmo2"])
def model(request, tiny):
    return build(request.param, tiny.tokenizer)


def run(model, tokenizer, bundled, method, cache, steps=2, precision="fp32", prefix=None, **options):
    config = TrainConfig(
        method=method, method_options=options, steps=steps, learning_rate=1e-2, batch_size=2, params="last_k", last_k=K,
        precision=precision, prefix_cache=cache,
    )
    # forget records of different lengths, so batches pad and the cache's padding is exercised
    return train(model, tokenizer, bundled.split("forget")[:3], bundled.split("retain")[:4], config, prefix=prefix)


# RMU steers block 2: the first trained one (blocks 2 and 3 train), where an off-by-one in the cache's indexing shows.
OPTIONS = {"rmu": {"layer": LAYERS - K}}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_cached_run_gives_the_plain_runs_losses_and_weights(model, tiny, bundled, method):
    plain = run(model, tiny.tokenizer, bundled, method, cache=False, **OPTIONS.get(method, {}))
    cache = PrefixCache()
    cached = run(model, tiny.tokenizer, bundled, method, cache=True, prefix=cache, **OPTIONS.get(method, {}))
    assert cache.states, "the last-k run did not use the cache"
    assert plain.history[1]["loss"] != plain.history[0]["loss"]  # the weights moved: step 2 checks the update too
    for a, b in zip(plain.history, cached.history):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-6)
        terms = {k: v for k, v in a.items() if k != "seconds"}
        assert {k: b[k] for k in terms} == pytest.approx(terms, rel=1e-5, abs=1e-6)
    for (name, p), q in zip(plain.model.named_parameters(), cached.model.parameters()):
        # Adam divides by the gradient's own scale, so fp32 rounding in a near-zero gradient moves a weight by up to a
        # few 1e-6 (seen on CPUs without AVX-512); a wrong cache moves it by the step size, lr = 1e-2
        torch.testing.assert_close(q, p, rtol=1e-5, atol=2e-5, msg=name)


def test_bf16_autocast_cached_run_tracks_the_plain_one(tiny, bundled):
    model = build(LlamaConfig, tiny.tokenizer)
    losses = {cache: [h["loss"] for h in run(model, tiny.tokenizer, bundled, "grad_diff", cache, precision="bf16").history] for cache in (False, True)}
    # bf16 matmuls round differently for different batch shapes: the same loss to bf16's precision, not bit for bit
    assert losses[True] == pytest.approx(losses[False], rel=1e-2, abs=1e-2)


def test_a_sweep_reuses_the_cache_and_a_new_k_refills_it(tiny, bundled, monkeypatch):
    model = build(OlmoConfig, tiny.tokenizer)
    cache = PrefixCache()
    first = run(model, tiny.tokenizer, bundled, "npo", cache=True, prefix=cache)
    held = dict(cache.states)
    # every sample of the run, once (token ids as keys), each its own length x hidden size, in fp32
    features = [encode(tiny.tokenizer, r.input, r.output, 256) for r in bundled.split("forget")[:3] + bundled.split("retain")[:4]]
    assert set(held) == {tuple(f["input_ids"]) for f in features}
    assert cache.nbytes == sum(len(f["input_ids"]) for f in features) * model.config.hidden_size * 4

    def must_not_compute(*args, **kwargs):
        raise AssertionError("the prefix was computed again")

    monkeypatch.setattr(prefix_module, "_head", must_not_compute)
    second = run(model, tiny.tokenizer, bundled, "npo", cache=True, prefix=cache)
    assert [h["loss"] for h in second.history] == [h["loss"] for h in first.history]
    assert all(cache.states[s] is held[s] for s in held)
    monkeypatch.undo()
    config = TrainConfig(method="npo", steps=1, learning_rate=1e-2, batch_size=2, params="last_k", last_k=1, precision="fp32")
    train(model, tiny.tokenizer, bundled.split("forget")[:3], bundled.split("retain")[:4], config, prefix=cache)
    assert cache.skipped == LAYERS - 1 and all(s not in held or cache.states[s] is not held[s] for s in cache.states)


def test_the_original_model_is_untouched_and_still_returns_every_hidden_state(tiny, bundled):
    model = build(LlamaConfig, tiny.tokenizer)
    before = {n: p.clone() for n, p in model.named_parameters()}
    run(model, tiny.tokenizer, bundled, "rmu", cache=True, **OPTIONS["rmu"])  # RMU reads hidden states from the reference tail
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert len(decoder_layers(model)) == LAYERS
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        assert len(model(input_ids=ids, output_hidden_states=True).hidden_states) == LAYERS + 1


def test_rmu_steering_a_frozen_block_is_a_plan_problem(tiny):
    model = build(LlamaConfig, tiny.tokenizer)
    config = TrainConfig(method="rmu", params="last_k", last_k=K)
    assert get_method("rmu", layer=LAYERS - K - 1).problems(model, config)[0].startswith(
        f"RMU steers block 1, but with last_k={K} only blocks 2-3 train")
    assert get_method("rmu", layer=LAYERS - K).problems(model, config) == []


def test_architectures_where_the_cache_is_not_exact_train_without_it(tiny, bundled):
    model = build(Qwen2Config, tiny.tokenizer)
    cache = PrefixCache()
    result = run(model, tiny.tokenizer, bundled, "grad_diff", cache=True, prefix=cache)
    assert result.status == "completed" and not cache.states


def test_forward_indexes_a_cached_batchs_hidden_states_as_the_whole_model_does(tiny, bundled):
    """Through the tail, hidden state i is still the output of block i - 1 (None before the tail), so RMU's layer
    index means the same block with and without the cache."""
    model = build(OlmoConfig, tiny.tokenizer)
    features = [encode(tiny.tokenizer, r.input, r.output, 256) for r in bundled.split("forget")[:2]]
    cache = PrefixCache()
    cache.fill(model, model, K, None, features)
    batch = collate(features, tiny.tokenizer.pad_token_id)
    with torch.no_grad():
        whole = forward(model, batch, output_hidden_states=True).hidden_states
        cut = forward(prefix_module.tail(model, K), {**batch, **cache.inputs(features)}, output_hidden_states=True).hidden_states
    assert len(cut) == len(whole) == LAYERS + 1 and cut[: LAYERS - K] == (None,) * (LAYERS - K)
    real = batch["attention_mask"].bool()
    for i in range(LAYERS - K, LAYERS + 1):
        torch.testing.assert_close(cut[i][real], whole[i][real], rtol=1e-5, atol=1e-5)


def test_in_run_scores_through_the_cache_equal_the_whole_models(tiny, bundled, monkeypatch):
    """A last-k run's scores during training (forget/retain teacher-forced, holdout level at step 0) read the cache and
    run the last k blocks only, and give what the whole model gives."""
    model = build(LlamaConfig, tiny.tokenizer)
    forget, retain, holdout = bundled.split("forget")[:3], bundled.split("retain")[:4], bundled.split("holdout")[:4]
    calls = []
    real_inputs = prefix_module.PrefixCache.inputs
    monkeypatch.setattr(prefix_module.PrefixCache, "inputs", lambda self, f: calls.append(len(f)) or real_inputs(self, f))
    scores = {}
    for cache in (False, True):
        config = TrainConfig(method="grad_ascent", steps=4, learning_rate=1e-2, batch_size=2, params="last_k", last_k=K,
                             precision="fp32", prefix_cache=cache, score_every=2)
        calls.clear()
        monitor = Monitor(tiny.tokenizer, forget, retain, config, model, holdout=holdout)
        result = train(model, tiny.tokenizer, forget, retain, config, monitor=monitor)
        scores[cache] = [h["scores"] for h in [{"scores": monitor.start}] + result.history if "scores" in h]
        trained_batches = len(result.history)
        # with the cache: one read per training batch plus the scoring passes' batches (forget + retain, and holdout)
        assert (len(calls) > trained_batches) == cache
    assert len(scores[True]) == 3 and scores[True][0]["never_seen_em"]
    assert scores[True][-1]["forget_nll"] > scores[True][0]["forget_nll"]  # the scores follow the training
    for plain, cached in zip(scores[False], scores[True]):
        assert cached.keys() == plain.keys()
        for key, value in plain.items():
            if isinstance(value, dict):  # per sample, rounded to 3 decimals: rounding may tip a last digit
                assert cached[key] == pytest.approx(value, abs=1e-3), key
            else:
                assert cached[key] == (pytest.approx(value, rel=1e-5, abs=1e-6) if isinstance(value, float) else value), key


def test_a_later_run_from_the_same_original_caches_no_holdout(tiny, bundled):
    """The holdout is read only by the step-0 pass; once a run from the same original made it, later runs (each with
    its own cache, as the studio's are) neither fill the holdout's states nor score it again."""
    model = build(LlamaConfig, tiny.tokenizer)
    forget, retain, holdout = bundled.split("forget")[:3], bundled.split("retain")[:4], bundled.split("holdout")[:4]
    config = TrainConfig(method="grad_ascent", steps=2, learning_rate=1e-2, batch_size=2, params="last_k", last_k=K,
                         precision="fp32", score_every=2)
    caches, starts = [], []
    for _ in range(2):
        caches.append(PrefixCache())
        monitor = Monitor(tiny.tokenizer, forget, retain, config, model, holdout=holdout)
        train(model, tiny.tokenizer, forget, retain, config, monitor=monitor, prefix=caches[-1])
        starts.append(monitor.start)
    holdout_ids = {tuple(f["input_ids"]) for f in monitor.holdout_features}
    assert holdout_ids <= caches[0].states.keys() and not holdout_ids & caches[1].states.keys()
    assert starts[1] == starts[0] and starts[0]["never_seen_em"]
