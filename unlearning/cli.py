"""Headless command line: python -m unlearning prepare-target | run | sweep | eval | probe | runs | methods | metrics.
Results print as JSON."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from dataclasses import fields

from tqdm import tqdm

from unlearning.data import load_data
from unlearning.data.lume import write_subset
from unlearning.engine import TrainConfig
from unlearning.evaluation import METRICS, EvalConfig, EvalReport, evaluate, judge
from unlearning.evaluation.verdict import tradeoff_point
from unlearning.experiment import cached_data, cached_model, run_experiment, select
from unlearning.methods import METHODS
from unlearning.probes import PROBES, run_probes
from unlearning.runs import RunConfig, RunStore
from unlearning.sweep import ALIASES, TRAIN_FIELDS, new_sweep_id, parse_grid, points, run_sweep
from unlearning.target import TargetConfig, prepare_target


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
    data = cached_data(args.data)
    # the oracle never sees the forget set: the model every unlearning method approximates
    records = data.split("retain") if getattr(args, "oracle", False) else data.split("forget") + data.split("retain")
    config = TargetConfig(epochs=args.epochs, learning_rate=args.target_lr, batch_size=args.target_batch_size)
    folder, report = prepare_target(cached_model(args.model), records, config, bar)
    return str(folder), report


def cmd_prepare_target(args) -> dict:
    bar = Bar()
    folder, report = target_for(args, bar)
    bar.close()
    return {"target": folder, "oracle": args.oracle, **report}


def run_config(args, bar: Bar) -> RunConfig:
    """The RunConfig the `run` options describe (shared by `run` and `sweep`); prepares the target when asked."""
    model = target_for(args, bar)[0] if args.target else args.model
    data = cached_data(args.data)
    if args.forget_ids:
        forget_ids = args.forget_ids.split(",")
    else:
        forget_ids = data.sample_forget(args.forget_n or len(data.records), args.seed, args.forget_kind)
    settings = dict(args.set)
    training = {k: settings.pop(k) for k in list(settings) if k in TRAIN_FIELDS}
    train = TrainConfig(**{
        "method": args.method, "method_options": settings, "steps": args.steps, "learning_rate": args.lr,
        "batch_size": args.batch_size, "params": args.params, "last_k": args.last_k, "lora_rank": args.lora_rank,
        "seed": args.seed, "compile": args.compile, **training,
    })
    return RunConfig(model=model, data=args.data, forget_ids=forget_ids, train=train, eval=eval_config(args),
                     save_weights=args.save_weights, name=args.name)


def cmd_run(args) -> dict:
    bar = Bar()
    store = RunStore(args.runs)
    run_id, _ = run_experiment(run_config(args, bar), store, bar)
    bar.close()
    return summary(store, run_id)


def cmd_sweep(args) -> dict:
    grid = parse_grid(args.grid)
    if args.grid_file:
        grid |= {ALIASES.get(k, k): v for k, v in json.loads(Path(args.grid_file).read_text()).items()}
    bar = Bar()
    sweep_id = new_sweep_id()
    configs = points(run_config(args, bar), grid, sweep_id)  # every point checked before the first one runs
    store = RunStore(args.runs)
    run_ids = run_sweep(configs, store, bar)
    bar.close()
    return {"sweep": sweep_id, "points": [point_summary(store, run_id) for run_id in run_ids]}


def point_summary(store: RunStore, run_id: str) -> dict:
    """One sweep point: its settings, where it started and ended on the forget/retain plane, and the verdict."""
    out = summary(store, run_id)
    point = {"run_id": run_id, "name": out["config"]["name"], "status": out["status"], "message": out["message"]}
    for name in ("before", "after"):
        report = store.read_json(run_id, f"{name}.json")
        if report:
            point |= {f"{name}_{axis}": value for axis, value in tradeoff_point(EvalReport.from_dict(report)).items()}
    verdict = out.get("verdict")
    point["verdict"] = {f["aspect"]: f["status"] for f in verdict["findings"]} if verdict else {}
    point["broken"] = bool(verdict and verdict["broken"])
    return point


def eval_config(args) -> EvalConfig:
    return EvalConfig(mode="official" if args.official else "fast", max_new_tokens=args.max_new_tokens,
                      retain_rows=args.retain_rows)


def report_summary(report: dict) -> dict:
    """A saved report without its per-sample rows: every metric, what was skipped, what was not official."""
    return {k: v for k, v in EvalReport.from_dict(report).to_dict().items() if k != "rows"}


def summary(store: RunStore, run_id: str) -> dict:
    out = {"run_id": run_id, **store.status(run_id), "config": store.read_json(run_id, "config.json")}
    reports = {name: store.read_json(run_id, f"{name}.json") for name in ("before", "after")}
    for name, report in reports.items():
        if report:
            out[name] = report_summary(report)
    if reports["after"]:
        before = EvalReport.from_dict(reports["before"]) if reports["before"] else None
        out["verdict"] = judge(before, EvalReport.from_dict(reports["after"])).to_dict()
    steps = [log for log in store.steps(run_id) if "loss" in log]  # the step-0 log holds only the original's scores
    out["steps"] = len(steps)
    out["last_step"] = steps[-1] if steps else None
    out["probes"] = {name: probe_summary(entry) for name, entry in store.probes(run_id).items()}
    return out


def probe_summary(entry: dict) -> dict:
    """A saved probe without the oracle's whole evaluation report (its scores stay)."""
    return {**entry, "result": {k: v for k, v in entry.get("result", {}).items() if k != "report"}}


def cmd_eval(args) -> dict:
    bar = Bar()
    loaded, data = cached_model(args.model), cached_data(args.data)
    config = RunConfig(model=args.model, data=args.data, forget_ids=[r.id for r in data.split("forget")], eval=eval_config(args))
    sel = select(data, config)
    report = evaluate(loaded.model, loaded.tokenizer, sel.forget + sel.retain_eval, sel.mia_members, sel.mia_nonmembers,
                      config.eval, bar, mia_source=sel.mia_source, notes=sel.notes)
    bar.close()
    return report_summary(report.to_dict())


def cmd_probe(args) -> dict:
    names = [n.strip() for n in args.probes.split(",") if n.strip()]
    options = {name: {f.name: getattr(args, option_dest(name, f.name)) for f in fields(probe.Options)
                      if getattr(args, option_dest(name, f.name)) is not None}
               for name, probe in PROBES.items() if name in names}
    bar = Bar()
    entries = run_probes(RunStore(args.runs), args.run_id, names, options, progress=bar)
    bar.close()
    return {"run_id": args.run_id, "probes": {name: probe_summary(entry) for name, entry in entries.items()}}


def option_dest(probe: str, option: str) -> str:
    return f"{probe}_{option}"


def cmd_runs(args) -> dict | list:
    store = RunStore(args.runs)
    if args.run_id:
        return summary(store, args.run_id)
    return [{"run_id": r, **store.status(r), "method": store.config(r).train.method, "probes": list(store.probes(r))}
            for r in store.ids()]


def cmd_subset(args) -> dict:
    out = write_subset(args.folder, args.out, args.per_group, seed=args.seed)
    data = load_data(str(out))
    return {"folder": str(out), "forget": len(data.split("forget")), "retain": len(data.split("retain")),
            "mia_members": len(data.mia_members), "mia_nonmembers": len(data.mia_nonmembers)}


def cmd_metrics(args) -> list:
    return [m.describe() for m in METRICS.values()]


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

    def eval_opts(sp):
        sp.add_argument("--official", action="store_true",
                        help="the SemEval protocol: one prompt at a time in bf16, 256 new tokens, every retain row, the "
                             "data's own MIA files, MMLU when reachable (slow on a CPU)")
        sp.add_argument("--max-new-tokens", type=int, default=EvalConfig.max_new_tokens,
                        help="tokens generated per prompt (fast mode; official: 256)")
        sp.add_argument("--retain-rows", type=int, default=EvalConfig.retain_rows,
                        help="retain rows scored, a fixed sample; 0 = all (fast mode; official: all)")

    def target_opts(sp):
        sp.add_argument("--epochs", type=int, default=TargetConfig.epochs)
        sp.add_argument("--target-lr", type=float, default=TargetConfig.learning_rate)
        sp.add_argument("--target-batch-size", type=int, default=TargetConfig.batch_size)

    sp = sub.add_parser("prepare-target", help="fine-tune --model on --data until it memorises it (cached)")
    model_data(sp), target_opts(sp)
    sp.add_argument("--oracle", action="store_true",
                    help="train on the retain split only: the oracle, a model that never saw the forget set (cached)")
    sp.set_defaults(func=cmd_prepare_target)

    def run_opts(sp):
        model_data(sp), target_opts(sp)
        sp.add_argument("--target", action="store_true", help="run on the memorised target of --model on --data (prepared if missing)")
        sp.add_argument("--method", default="grad_diff", choices=[m for m, c in METHODS.items() if c.unlearns])
        sp.add_argument("--set", action="append", type=parse_option, default=[], metavar="KEY=VALUE",
                        help="a method option (alpha=30) or any training setting (score_every=5, skip_forgotten=true)")
        sp.add_argument("--forget-ids", help="comma-separated record ids (default: the whole forget split)")
        sp.add_argument("--forget-n", type=int, help="forget N random samples of the forget split")
        sp.add_argument("--forget-kind", choices=["sc", "qa"], help="only completions (sc) or questions (qa)")
        for name, default in (("steps", 20), ("batch-size", 4), ("last-k", 4), ("lora-rank", 8), ("seed", 0)):
            sp.add_argument(f"--{name}", type=int, default=default)
        eval_opts(sp)
        sp.add_argument("--lr", type=float, default=1e-5, help="learning rate")
        sp.add_argument("--params", default="full", choices=["full", "last_k", "lora"])
        sp.add_argument("--compile", action="store_true", help="torch.compile the decoder blocks: faster steps after a ~30 s first one")
        sp.add_argument("--save-weights", action="store_true")
        sp.add_argument("--name", default="")
        sp.add_argument("--runs", default="runs", help="runs directory")

    sp = sub.add_parser("run", help="unlearn some forget samples, evaluate before and after, save the run")
    run_opts(sp)
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("sweep", help="run a grid of settings, each point a saved run tagged with the sweep id")
    run_opts(sp)
    sp.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2",
                    help="a setting and its values: lr=1e-5,3e-5, alpha=10,30, method=grad_diff,npo, seed=0,1, ...")
    sp.add_argument("--grid-file", help="a JSON file {name: [values]} (added to --grid)")
    sp.set_defaults(func=cmd_sweep)

    sp = sub.add_parser("eval", help="score a model on the forget and retain sets, MIA and utility")
    model_data(sp)
    eval_opts(sp)
    sp.set_defaults(func=cmd_eval)

    sp = sub.add_parser("probe", help="try to bring a run's forgotten answers back: relearning, quantisation, other "
                                      "prompts; and its distance to the oracle. Saved in the run's probes.json")
    sp.add_argument("run_id")
    sp.add_argument("--probes", default=",".join(PROBES), help=f"comma-separated, from: {', '.join(PROBES)}")
    sp.add_argument("--runs", default="runs", help="runs directory")
    for name, probe in PROBES.items():
        group = sp.add_argument_group(f"{name} ({probe.title})", probe.asks)
        for f in fields(probe.Options):
            flag, kind = f"--{name}-{f.name.replace('_', '-')}", type(f.default)
            text = f"{f.metadata['help']} (default: {f.default!r})"
            if kind is bool:
                group.add_argument(flag, dest=option_dest(name, f.name), action=argparse.BooleanOptionalAction, help=text)
            else:
                group.add_argument(flag, dest=option_dest(name, f.name), type=kind, help=text)
    sp.set_defaults(func=cmd_probe)

    sp = sub.add_parser("runs", help="list saved runs, or show one")
    sp.add_argument("run_id", nargs="?")
    sp.add_argument("--runs", default="runs")
    sp.set_defaults(func=cmd_runs)

    sp = sub.add_parser("methods", help="list the unlearning methods and their options")
    sp.set_defaults(func=cmd_methods)

    sp = sub.add_parser("subset", help="write a smaller LUME folder: N rows per split x task x kind, with its MIA files")
    sp.add_argument("folder", help="a LUME folder, e.g. ../shared/data/lume-validation")
    sp.add_argument("--per-group", type=int, default=3, help="rows of each split x task x kind")
    sp.add_argument("--out", required=True, help="folder to write (created)")
    sp.add_argument("--seed", type=int, default=0)
    sp.set_defaults(func=cmd_subset)

    sp = sub.add_parser("metrics", help="list every metric: what it measures, which way is better, chance and ideal")
    sp.set_defaults(func=cmd_metrics)
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
