import json

import pytest

from unlearning import target
from unlearning.target import TargetConfig, memorisation, prepare_target


def test_prepare_target_memorises_and_is_cached(tiny, bundled, tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNING_CACHE", str(tmp_path))
    records = [r for r in bundled.split("forget") if r.kind == "sc"][:2]
    assert memorisation(tiny, records)["all"] < 0.2  # a random model knows nothing
    config = TargetConfig(epochs=60, learning_rate=3e-3, batch_size=2, precision="fp32")
    folder, report = prepare_target(tiny, records, config)
    assert report["rouge_l_recall"] > 0.6 and report["steps"] == 60
    assert report["rouge_l_recall_by_split"] == {"forget": pytest.approx(report["rouge_l_recall"])}
    assert json.loads((folder / "target.json").read_text()) == report
    assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()

    def must_not_train(*args, **kwargs):
        raise AssertionError("a cached target was trained again")

    monkeypatch.setattr(target, "train", must_not_train)
    assert prepare_target(tiny, records, config) == (folder, report)
