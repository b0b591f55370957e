"""The run plan: one function turns a request into a checked plan or a list of readable problems (issues 11.6, 12.6)."""
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import unlearning.plan as plan_module
from unlearning.atomic import to_json
from unlearning.engine import TrainConfig
from unlearning.evaluation import EvalConfig
from unlearning.methods import METHODS
from unlearning.options import coerce, options
from unlearning.plan import PlanError, make_plan
from unlearning.run_config import RunConfig, parse_run_config


def request(bundled, **changes) -> dict:
    """A request as the CLI sends it: text values, two forget samples, the tiny model."""
    forget = [r.id for r in bundled.split("forget")[:2]]
    base = {"model": "tiny", "data": "bundled", "forget_ids": forget,
            "train": {"method": "grad_diff", "method_options": {"alpha": "30"}, "steps": "3", "learning_rate": "1e-3",
                      "batch_size": "2"},
            "eval": {"max_new_tokens": "8"}}
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            base[section] = {**base[section], name: value}
        else:
            base[section] = value
    return base


def problems(bundled, **changes) -> list[str]:
    with pytest.raises(PlanError) as error:
        make_plan(request(bundled, **changes))
    return error.value.problems


def test_a_good_request_becomes_a_plan_with_every_default_filled_in(bundled):
    plan = make_plan(request(bundled))
    config = plan.config
    assert config.train.steps == 3 and config.train.learning_rate == 1e-3 and config.eval.max_new_tokens == 8
    assert config.train.method_options == {"gamma": 1.0, "alpha": 30.0, "retain_loss": "nll", "nll_cap": 0.0}
    assert config.train.max_length == TrainConfig.max_length and config.eval.utility == EvalConfig.utility
    assert [r.id for r in plan.selection.forget] == config.forget_ids
    assert plan.selection.retain == bundled.split("retain") and len(plan.selection.retain_eval) == 40
    assert plan.notes == []


@pytest.mark.parametrize("change, words", [
    (dict(forget_ids=[]), "No forget samples selected"),
    (dict(forget_ids=["no-such-id", "nor-this"]), "2 forget id(s) are not in bundled: no-such-id, nor-this"),
    (dict(forget_ids=["bio-001sc1", "bio-001sc1"]), "forget ids listed more than once: bio-001sc1"),
    (dict(retain_ids=["bio-001sc1", "bio-010sc1"], forget_ids=["bio-001sc1"]),
     "1 sample(s) are in both the forget and the retain set: bio-001sc1"),
    (dict(retain_ids=[]), "Gradient difference needs retain samples, and the retain set is empty"),
    (dict(train__method="nope"), "unknown method 'nope'"),
    (dict(train__method_options={"alpha": "abc"}), "grad_diff option: alpha must be a number (got 'abc')"),
    (dict(train__method_options={"alpha": "NaN"}), "alpha must be a finite number (got 'NaN')"),
    (dict(train__method_options={"alpha": "1e309"}), "alpha must be a finite number (got '1e309')"),
    (dict(train__method_options={"alpha": float("inf")}), "alpha must be a finite number"),
    (dict(train__method_options={"beta": "1"}), "grad_diff option: unknown option 'beta'"),
    (dict(train__method_options={"retain_loss": "l2"}), "retain loss must be one of 'nll', 'kl' (got 'l2')"),
    (dict(train__learning_rate="-1"), "learning rate must be > 0 and <= 1 (got '-1')"),
    (dict(train__learning_rate=float("nan")), "learning rate must be a finite number"),
    (dict(train__steps="0"), "steps must be >= 1 and <= 100000 (got '0')"),
    (dict(train__steps="2.5"), "steps must be a whole number (got '2.5')"),
    (dict(train__steps=True), "steps must be a whole number (got True)"),
    (dict(train__params="half"), "params must be one of 'full', 'last_k', 'lora' (got 'half')"),
    (dict(train__params="last_k", train__last_k="3"), "k = 3 last layers to train, but the model has only 2"),
    (dict(train__method="rmu", train__method_options={"layer": "2"}), "layer 2 does not exist: the model has blocks 0..1"),
    (dict(train__compile="yes"), "compile must be true or false (got 'yes')"),
    (dict(eval={"max_new_tokens": "5000"}), "max new tokens must be >= 1 and <= 1024 (got '5000')"),
    (dict(eval={"utility": "iq"}), "utility must be one of 'items', 'mmlu', 'none'"),
    (dict(colour="blue"), "unknown setting 'colour'"),
    (dict(model="/no/such/model"), "does not exist"),
    (dict(data="/no/such/data.csv"), "the data '/no/such/data.csv' did not load"),
    (dict(name=["not", "text"]), "name must be text"),
])
def test_each_rule_gives_a_readable_problem(bundled, change, words):
    assert any(words in p for p in problems(bundled, **change)), problems(bundled, **change)


def test_every_problem_is_reported_at_once(bundled):
    found = problems(bundled, train__steps="0", train__learning_rate="abc", train__method_options={"alpha": "x"},
                     eval={"max_new_tokens": "0"})
    assert len(found) == 4


def test_compile_without_a_compiler_is_refused_up_front(bundled, monkeypatch):
    monkeypatch.setattr(plan_module, "cpp_compiler", lambda: None)
    assert any("C++ compiler" in p for p in problems(bundled, train__compile=True))


def test_the_batch_is_lowered_to_the_forget_set_with_a_note(bundled):
    plan = make_plan(request(bundled, train__batch_size="8"))
    assert plan.config.train.batch_size == 2
    assert plan.notes == ["The batch size is lowered to 2: there are only 2 forget samples."]


def test_forget_samples_from_the_retain_split_leave_the_retain_set(bundled):
    moved = [r.id for r in bundled.split("retain")[:2]]
    plan = make_plan(request(bundled, forget_ids=moved))
    assert plan.config.retain_ids is None  # recorded as "the retain split, less the forget set": reproducible
    assert {r.id for r in plan.selection.retain} == {r.id for r in bundled.split("retain")} - set(moved)
    assert plan.notes == ["2 sample(s) to forget come from the retain split: they are left out of the retain set."]
    # and they are this run's forget samples in every report: scored and judged as forget, not as retain
    assert [r.split for r in plan.selection.forget] == ["forget", "forget"]
    assert [r.id for r in plan.selection.forget] == moved and bundled.by_ids(moved)[0].split == "retain"


def test_a_method_without_a_retain_term_needs_no_retain_set(bundled):
    plan = make_plan(request(bundled, retain_ids=[], train__method="grad_ascent", train__method_options={}))
    assert plan.selection.retain == [] and plan.config.train.method == "grad_ascent"


def test_every_option_has_a_help_text_and_a_default_inside_its_bounds():
    """What the CLI flags and the app controls are generated from: each default must pass its own check."""
    for cls in [TrainConfig, EvalConfig] + [m.Config for m in METHODS.values()]:
        for option in options(cls):
            assert option.help and option.label, (cls.__name__, option.name)
            assert coerce(option, option.default) == option.default, (cls.__name__, option.name)
            assert type(option.default) is option.kind, (cls.__name__, option.name)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
train_keys = st.sampled_from([o.name for o in options(TrainConfig)] + ["method", "method_options"])


@settings(max_examples=300, deadline=None)
@given(train=st.dictionaries(train_keys, json_values, max_size=4),
       top=st.dictionaries(st.sampled_from(["model", "data", "forget_ids", "retain_ids", "save_weights", "name", "eval"]),
                           json_values, max_size=3))
def test_any_request_is_either_refused_with_reasons_or_standard_json(train, top):
    """Whatever a request holds (NaN, 1e309, lists, text), the check answers problems or a config that is plain JSON."""
    config, found = parse_run_config({**top, "train": train})
    if config is None:
        assert found and all(isinstance(p, str) and p for p in found)
        return
    text = to_json(config.to_dict())
    json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}"))
    assert RunConfig.from_dict(json.loads(text)) == config
    assert all(math.isfinite(v) for v in (config.train.learning_rate, config.train.grad_clip))


def counted(bundled, **changes) -> dict:
    """A request with a forget count instead of forget ids (the CLI's --forget-n)."""
    return {k: v for k, v in request(bundled, **changes).items() if k != "forget_ids"}


@pytest.mark.parametrize("n, words", [
    (0, "forget n must be >= 1 (got 0)"), ("0", "forget n must be >= 1 (got '0')"), (-3, "forget n must be >= 1 (got -3)"),
    ("2.5", "forget n must be a whole number (got '2.5')"), ("many", "forget n must be a whole number (got 'many')"),
    (True, "forget n must be a whole number (got True)"), ("", "forget n must be a whole number (got '')"),
])
def test_a_forget_count_means_what_it_says(bundled, n, words):
    """Issue 21.5: 0 is not 'not given', and a count is a whole number >= 1, for the CLI and the app alike."""
    with pytest.raises(PlanError) as error:
        make_plan(counted(bundled, forget_n=n))
    assert error.value.problems == [words]


def test_a_forget_count_larger_than_the_forget_split_is_noted(bundled):
    plan = make_plan(counted(bundled, forget_n="100000"))
    assert len(plan.config.forget_ids) == len(bundled.split("forget")) == 26
    assert plan.notes == ["There are only 26 forget samples: all 26 are forgotten (100000 were asked for)."]
    drawn = make_plan(counted(bundled, forget_n=3, forget_kind="qa")).config.forget_ids
    assert len(drawn) == 3 and all(r.kind == "qa" for r in bundled.by_ids(drawn))
    questions = len([r for r in bundled.split("forget") if r.kind == "qa"])
    assert make_plan(counted(bundled, forget_n=99, forget_kind="qa")).notes == [
        f"There are only {questions} forget questions: all {questions} are forgotten (99 were asked for)."]
    assert problems(bundled, forget_n=3) == ["give forget ids or a forget count (forget n), not both"]


def test_a_method_that_does_not_unlearn_is_refused(bundled):
    """Issue 21.9: finetune (what prepare-target trains with) was accepted by --method but listed nowhere."""
    assert problems(bundled, train__method="finetune", train__method_options={}) == [
        "finetune (Fine-tune (memorise)) is not an unlearning method: it is how prepare-target memorises data; choose "
        "one of: " + ", ".join(sorted(m for m, c in METHODS.items() if c.unlearns))]
