"""Headless command line: python -m unlearning prepare-target | run | eval | runs | methods. Results print as JSON."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields

from tqdm import tqdm

from unlearning.engine import TrainConfig
from unlearning.evaluate import EvalConfig, evaluate
from unlearning.experiment import cached_data, cached_model, run_experiment, select
from unlearning.methods import METHODS
from unlearning.runs import RunConfig, RunStore
from unlearning.target import TargetConfig, prepare_target, target_records


class Bar:
    """A tqdm bar on stderr fed by the library's progress(fraction, stage) callbacks; stdout stays pure JSON."""

    def __init__(self) -> None:
        self.bar = tqdm(total=1000, file=sys.stderr, bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}")

    def __call__(self, fraction: float, stage: str) -> None:
        self.bar.n = int(1000 * fraction)
        self.bar.set_postfix_str(stage[:60])

    def close(self) -> None:
        self.bar.close()


def parse_option(text: str) -> tuple[str, object]:
    """--set key=value; the value is read as JSON when it parses (numbers, true), else kept as text."""
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def target_for(args, bar: Bar) -> tuple[str, dict]:
    config = TargetConfig(epochs=args.epochs, learning_rate=args.target_lr, batch_size=args.target_batch_size)
    folder, report = prepare_target(cached_model(args.model), target_records(cached_data(args.data)), config, bar)
    return str(folder), report


def cmd_prepare_target(args) -> dict:
    bar = Bar()
    folder, report = target_for(args, bar)
    bar.close()
    return {"target": folder, **report}


def cmd_run(args) -> dict:
    bar = Bar()
    model = target_for(args, bar)[0] if args.target else args.model
    data = cached_data(args.data)
    if args.forget_ids:
        forget_ids = args.forget_ids.split(",")
    else:
        forget_ids = data.sample_forget(args.forget_n or len(data.records), args.seed, args.forget_kind)
    train = TrainConfig(
        method=args.method, method_options=dict(args.set), steps=args.steps, learning_rate=args.lr,
        batch_size=args.batch_size, params=args.params, last_k=args.last_k, lora_rank=args.lora_rank, seed=args.seed,
        compile=args.compile,
    )
    config = RunConfig(model=model, data=args.data, forget_ids=forget_ids, train=train,
                       eval=EvalConfig(max_new_tokens=args.max_new_tokens), save_weights=args.save_weights, name=args.name)
    store = RunStore(args.runs)
    run_id, _ = run_experiment(config, store, bar)
    bar.close()
    return summary(store, run_id)


def summary(store: RunStore, run_id: str) -> dict:
    out = {"run_id": run_id, **store.status(run_id), "config": store.read_json(run_id, "config.json")}
    for name in ("before", "after"):
        report = store.read_json(run_id, f"{name}.json")
        if report:
            out[name] = {k: v for k, v in report.items() if k != "rows"}
    steps = store.steps(run_id)
    out["steps"] = len(steps)
    out["last_step"] = steps[-1] if steps else None
    return out


def cmd_eval(args) -> dict:
    bar = Bar()
    loaded, data = cached_model(args.model), cached_data(args.data)
    config = RunConfig(model=args.model, data=args.data, forget_ids=[r.id for r in data.split("forget")])
    sel = select(data, config, retain_eval_size=args.retain_n)
    eval_config = EvalConfig(max_new_tokens=args.max_new_tokens)
    report = evaluate(loaded.model, loaded.tokenizer, sel.forget + sel.retain_eval, sel.mia_members, sel.mia_nonmembers, eval_config,
                      lambda stage, done, total: bar(done / max(total, 1), stage))
    bar.close()
    return {k: v for k, v in report.to_dict().items() if k != "rows"}


def cmd_runs(args) -> dict | list:
    store = RunStore(args.runs)
    if args.run_id:
        return summary(store, args.run_id)
    return [{"run_id": r, **store.status(r), "method": store.config(r).train.method} for r in store.ids()]


def cmd_methods(args) -> list:
    return [
        {"name": m.name, "title": m.title, "paper": m.paper, "options": {f.name: f.default for f in fields(m.Config)}}
        for m in METHODS.values() if m.unlearns
    ]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m unlearning", description="Unlearning Studio, headless.")
    sub = p.add_subparsers(dest="command", required=True)

    def model_data(sp):
        sp.add_argument("--model", default="default", help="'default' (offline SmolLM2-135M), 'tiny', a folder or a hub id")
        sp.add_argument("--data", default="bundled", help="'bundled', a LUME folder or hub id, a TOFU json, or your CSV/JSONL/parquet")

    def target_opts(sp):
        sp.add_argument("--epochs", type=int, default=TargetConfig.epochs, help="the most epochs: training stops once the data is memorised")
        sp.add_argument("--target-lr", type=float, default=TargetConfig.learning_rate)
        sp.add_argument("--target-batch-size", type=int, default=TargetConfig.batch_size)

    sp = sub.add_parser("prepare-target", help="fine-tune --model on --data until it memorises it (cached)")
    model_data(sp), target_opts(sp)
    sp.set_defaults(func=cmd_prepare_target)

    sp = sub.add_parser("run", help="unlearn some forget samples, evaluate before and after, save the run")
    model_data(sp), target_opts(sp)
    sp.add_argument("--target", action="store_true", help="run on the memorised target of --model on --data (prepared if missing)")
    sp.add_argument("--method", default="grad_diff", choices=[m for m, c in METHODS.items() if c.unlearns])
    sp.add_argument("--set", action="append", type=parse_option, default=[], metavar="KEY=VALUE", help="method option, e.g. alpha=2")
    sp.add_argument("--forget-ids", help="comma-separated record ids (default: the whole forget split)")
    sp.add_argument("--forget-n", type=int, help="forget N random samples of the forget split")
    sp.add_argument("--forget-kind", choices=["sc", "qa"], help="only completions (sc) or questions (qa)")
    for name, default in (("steps", 20), ("batch-size", 4), ("last-k", 4), ("lora-rank", 8), ("seed", 0), ("max-new-tokens", 64)):
        sp.add_argument(f"--{name}", type=int, default=default)
    sp.add_argument("--lr", type=float, default=1e-5, help="learning rate")
    sp.add_argument("--params", default="full", choices=["full", "last_k", "lora"])
    sp.add_argument("--compile", action="store_true", help="torch.compile the decoder blocks: faster steps after a ~30 s first one")
    sp.add_argument("--save-weights", action="store_true")
    sp.add_argument("--name", default="")
    sp.add_argument("--runs", default="runs", help="runs directory")
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("eval", help="score a model on the forget and retain sets, MIA and utility")
    model_data(sp)
    sp.add_argument("--max-new-tokens", type=int, default=256)
    sp.add_argument("--retain-n", type=int, default=40, help="retain samples to score")
    sp.set_defaults(func=cmd_eval)

    sp = sub.add_parser("runs", help="list saved runs, or show one")
    sp.add_argument("run_id", nargs="?")
    sp.add_argument("--runs", default="runs")
    sp.set_defaults(func=cmd_runs)

    sp = sub.add_parser("methods", help="list the unlearning methods and their options")
    sp.set_defaults(func=cmd_methods)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        result = args.func(args)
    except (ValueError, KeyError, RuntimeError, OSError) as error:
        print(json.dumps({"error": str(error)}), file=sys.stdout)
        return 2
    print(json.dumps(result, indent=1, default=str))
    return 0
