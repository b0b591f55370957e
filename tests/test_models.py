import json
import os

import pytest
import torch
from transformers import AutoModelForMaskedLM, BertConfig, ElectraConfig, RobertaConfig, ViTConfig, ViTModel

from unlearning.evaluation import generate
from unlearning.models import (ModelLoadError, load_model, lora_parameters, memory_estimate, model_facts, suggested_training,
                               training_modes)


def test_default_model_is_the_real_smollm2_and_knows_things():
    loaded = load_model("default")
    assert loaded.describe()["parameters"] == 134_515_008 and loaded.describe()["layers"] == 30
    # A dequantisation or config mistake would break this long before it broke the parameter count.
    assert "Paris" in generate(loaded.model, loaded.tokenizer, ["The capital of France is"], max_new_tokens=5)[0]


@pytest.fixture
def saved_tiny(tiny, tmp_path):
    tiny.model.save_pretrained(tmp_path)
    tiny.tokenizer.save_pretrained(tmp_path)
    return tmp_path


def test_local_folder_round_trips(tiny, saved_tiny):
    loaded = load_model(str(saved_tiny))
    assert all(torch.equal(a, b) for a, b in zip(loaded.model.parameters(), tiny.model.parameters()))


def test_pickled_weights_need_an_opt_in(tiny, saved_tiny):
    os.remove(saved_tiny / "model.safetensors")
    torch.save(tiny.model.state_dict(), saved_tiny / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="Only safetensors weights load: .* Convert them once") as error:
        load_model(str(saved_tiny))
    assert "opt in" not in str(error.value)  # issue 21.9: neither the CLI nor the app offers one
    assert load_model(str(saved_tiny), allow_pickle=True).n_params == tiny.n_params


def test_not_a_causal_lm_is_named(tmp_path):
    ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="'vit' model, not a causal language model"):
        load_model(str(tmp_path))


@pytest.mark.parametrize("path, words", [("/no/such/folder", "does not exist"), (".", "no config.json")])
def test_bad_paths_are_explained(path, words):
    with pytest.raises(ModelLoadError, match=words):
        load_model(path)


def test_memory_estimate_counts_copy_grads_adam_and_casts():
    gib = 1024**3
    full = memory_estimate(n_params=gib, trainable=gib)  # 1 Gi parameters, fp32, bf16 autocast
    assert full["total (excluding activations)"] == pytest.approx(4 + 4 + 4 + 8 + 2)
    lora = memory_estimate(n_params=gib, trainable=gib // 1000, weight_bytes=2, autocast_bf16=False)  # bf16 weights
    assert lora["total (excluding activations)"] == pytest.approx(2 + 2 + 6 / 1000, rel=1e-3)


MARKER_CODE = '''import pathlib
pathlib.Path(__file__).with_name("EXECUTED").write_text("this file ran")
from transformers import LlamaConfig, LlamaForCausalLM


class EvilConfig(LlamaConfig):
    model_type = "evil-lm"


class EvilModel(LlamaForCausalLM):
    config_class = EvilConfig
'''
AUTO_MAP = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}


def test_remote_code_is_refused_and_never_runs(tmp_path):
    """A folder whose config needs its own code (auto_map): refused with a reason, and its code never imported."""
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "evil-lm", "auto_map": AUTO_MAP}))
    (tmp_path / "evil.py").write_text(MARKER_CODE)
    with pytest.raises(ModelLoadError, match="needs its own Python code.*refused.*transformers itself implements") as error:
        load_model(str(tmp_path))
    assert "trust_remote_code" not in str(error.value)  # issue 21.9: no opt-in the CLI or the app could give
    assert not (tmp_path / "EXECUTED").exists()


def test_a_known_architecture_loads_without_its_remote_code(tiny, saved_tiny):
    """auto_map beside a model_type transformers knows: the standard class loads, the folder's code never runs."""
    config = json.loads((saved_tiny / "config.json").read_text())
    (saved_tiny / "config.json").write_text(json.dumps({**config, "auto_map": AUTO_MAP}))
    (saved_tiny / "evil.py").write_text(MARKER_CODE)
    loaded = load_model(str(saved_tiny))
    assert type(loaded.model).__name__ == "LlamaForCausalLM" and loaded.n_params == tiny.n_params
    assert not (saved_tiny / "EXECUTED").exists()


@pytest.mark.parametrize("config", [BertConfig, RobertaConfig, ElectraConfig])
def test_an_encoder_is_refused_though_transformers_gives_it_a_causal_head(tiny, tmp_path, config):
    """Issue 21.6: BERT-like encoders have a causal-LM head class, loaded with is_decoder false: they attend both ways.
    Refused at load, so the run plan refuses it before any run folder exists."""
    size = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    AutoModelForMaskedLM.from_config(config(vocab_size=len(tiny.tokenizer), **size)).save_pretrained(tmp_path)
    tiny.tokenizer.save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="not a causal decoder: each position also sees the tokens after it"):
        load_model(str(tmp_path))


def test_lora_estimate_matches_peft(tiny):
    import copy

    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(copy.deepcopy(tiny.model), LoraConfig(r=8, target_modules="all-linear"))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert lora_parameters(tiny.model, 8) == trainable


def test_model_facts_and_suggested_learning_rate(tiny):
    facts = model_facts(tiny)
    modes = training_modes(facts, last_k=1, lora_rank=8)
    assert facts["parameters"] == tiny.n_params and modes["full"]["trainable"] == tiny.n_params
    assert modes["full"]["gib"] > modes["lora (rank 8)"]["gib"]
    assert modes["lora (rank 8)"]["trainable"] == lora_parameters(tiny.model, 8)
    # the table follows the k and the rank a run would use (the IdK preset's k=8 once read k=4)
    layer = sum(p.numel() for p in tiny.model.model.layers[-1].parameters())
    assert modes["last_k (k=1)"]["trainable"] == layer
    assert training_modes(facts, last_k=2, lora_rank=3)["last_k (k=2)"]["trainable"] == 2 * layer
    assert training_modes(facts, last_k=2, lora_rank=3)["lora (rank 3)"]["trainable"] == lora_parameters(tiny.model, 3)
    assert facts["suggested"]["learning_rate"] == 1e-3
    assert "learning_rate" not in suggested_training(135_000_000)  # a real model keeps TrainConfig's default
