"""Headless command line: python -m unlearning prepare-target | run | sweep | eval | probe | runs | report | delete |
subset | methods | metrics.

Results print as JSON on stdout, a progress bar on stderr; errors print as {"error": ...}, never a traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

from unlearning.data import DataError, cached_data, data_source, load_data
from unlearning.data.lume import PARTS, write_subset
from unlearning.engine import TrainConfig
from unlearning.evaluation import METRICS, EvalConfig, evaluate, judge
from unlearning.experiment import evaluate_after, evaluate_model, run_experiment
from unlearning.html_report import write_report
from unlearning.jobs import user_message
from unlearning.methods import METHODS, get_preset
from unlearning.models import ModelLoadError, cached_model
from unlearning.probes import PROBES, probe_summary, run_probes
from unlearning.options import Option, options, parse
from unlearning.plan import Plan, make_plan, selection
from unlearning.runs import RunStore
from unlearning.summary import run_details, run_listing, sweep_point
from unlearning.sweep import ALIASES, new_sweep_id, parse_grid, points, run_sweep
from unlearning.oracle import oracle_folder, prepare_oracle
from unlearning.target import TargetConfig, prepare_target, target_records

EXIT_CODES = {"completed": 0, "failed": 1, "bad input": 2, "diverged": 3, "cancelled": 4, "stopped": 5}
EXIT_HELP = """exit codes (every command; `run` by how the run ended):
  0  completed
  1  failed: the run started and stopped on an error (disk full, out of memory); its folder says why
  2  bad input: nothing was created or changed (a wrong option, id, model or data; also usage errors)
  3  diverged: the loss became NaN or infinite; the curve so far is kept
  4  cancelled: stopped by Ctrl-C or SIGTERM; the curve so far is kept
  5  stopped: the guard (--stop-below) ended training early because retain fell; the run was still evaluated"""
EVAL_FLAGS = [o for o in options(EvalConfig) if not o.advanced]  # mode, max new tokens, retain rows, utility, mia
TARGET_FLAGS = [o for o in options(TargetConfig) if not o.advanced]  # epochs, memorised, learning rate, batch size
BAD_INPUT = (ValueError, KeyError, DataError, ModelLoadError)  # ModelLoadError is a RuntimeError: listed first


class Bar:
    """A tqdm bar on stderr fed by the library's progress(fraction, stage) callbacks; stdout stays pure JSON."""

    def __init__(self) -> None:
        self.bar = tqdm(total=1000, file=sys.stderr, bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}")

    def __call__(self, fraction: float, stage: str) -> None:
        self.bar.n = int(1000 * fraction)
        self.bar.set_postfix_str(stage[:60])

    def close(self) -> None:
        self.bar.close()


def parse_option(text: str) -> tuple[str, str]:
    """--set key=value; the value stays text here and is checked against the method's option by the run plan."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key.strip(), value


@contextmanager
def sigterm_cancels() -> Iterator[threading.Event]:
    """SIGTERM cancels a run as the app's Cancel button does: it sets the event the run checks between steps and
    evaluation batches, so the run stops at a clean point, is marked cancelled and keeps its curve. Raising from the
    handler instead could land anywhere (inside a destructor, where Python prints the exception and carries on); a
    second SIGTERM still interrupts at once."""
    cancel = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # only the main thread may handle signals
        yield cancel
        return

    def stop(signum, frame):
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield cancel
    finally:
        signal.signal(signal.SIGTERM, previous)


def target_for(args, bar: Bar) -> tuple[str, dict]:
    """The memorised target of --model on --data, and (unless --no-oracle) its oracle: the same base and settings on
    the retain split only, the model every verdict reads the run against. Both cached."""
    data = cached_data(args.data)
    given = {o.name: getattr(args, f"target_{o.name}") for o in TARGET_FLAGS}
    config = TargetConfig(**{name: value for name, value in given.items() if value is not None})  # checked there
    share = 0.5 if args.oracle else 1.0
    folder, report = prepare_target(cached_model(args.model), target_records(data), config,
                                    lambda f, stage: bar(share * f, f"target: {stage}"))
    if args.oracle:
        oracle, oracle_report, _ = prepare_oracle(str(folder), data, lambda f, stage: bar(0.5 + 0.5 * f, f"oracle: {stage}"))
        report = {**report, "oracle": {"folder": str(oracle), **oracle_report}}
    return str(folder), report


def cmd_prepare_target(args) -> dict:
    bar = Bar()
    folder, report = target_for(args, bar)
    bar.close()
    return {"target": folder, **report}


def run_request(args, model: str) -> dict:
    """The run the flags describe, as the run plan takes it: the values as typed, checked there."""
    if args.forget_ids:
        forget = {"forget_ids": [i.strip() for i in args.forget_ids.split(",") if i.strip()]}
    elif args.forget_n is not None:  # drawn and checked by the run plan
        forget = {"forget_n": args.forget_n, "forget_kind": args.forget_kind}
    else:
        data = cached_data(args.data)
        forget = {"forget_ids": [r.id for r in data.split("forget") if args.forget_kind in (None, r.kind)]}
    train = {o.name: getattr(args, o.name) for o in options(TrainConfig) if getattr(args, o.name) is not None}
    method_options = dict(args.set)
    if args.preset:  # the preset's settings, under any flag given explicitly
        preset = get_preset(args.method, args.preset)
        train, method_options = {**preset.train, **train}, {**preset.options, **method_options}
    retain_ids = [i.strip() for i in args.retain_ids.split(",") if i.strip()] if args.retain_ids else None
    return {"model": model, "data": args.data, **forget, "retain_ids": retain_ids,
            "train": {"method": args.method, "method_options": method_options, **train},
            "eval": eval_request(args), "save_weights": args.save_weights, "name": args.name}


def eval_request(args) -> dict:
    return {o.name: getattr(args, o.name) for o in EVAL_FLAGS if getattr(args, o.name) is not None}


def planned(args, bar: Bar) -> Plan:
    """The run the flags describe, checked; with --target, on the prepared target. Checked on the base model first, so
    a bad option fails at once, not after minutes of preparing a target."""
    request = run_request(args, args.model)
    plan = make_plan(request)
    if args.target:
        plan = make_plan({**request, "model": target_for(args, bar)[0]})
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr)
    return plan


def cmd_run(args) -> dict:
    bar = Bar()
    plan = planned(args, bar)
    store = RunStore(args.runs)
    run_id = store.create(plan.config)
    error = None
    try:
        with sigterm_cancels() as cancel:
            run_experiment(plan, store, bar, cancel=cancel, run_id=run_id)
    except KeyboardInterrupt:
        pass  # the run is marked cancelled: the summary and the exit code say so
    except Exception as failure:  # noqa: BLE001 - the run folder records the failure; the user reads a sentence
        error = user_message(failure)
    finally:
        bar.close()
    out = run_details(store, run_id)
    if error:
        out["error"] = error
    return {**out, "notes": plan.notes}


def cmd_sweep(args) -> dict:
    grid = parse_grid(args.grid)
    if args.grid_file:
        grid |= {ALIASES.get(k, k): v for k, v in json.loads(Path(args.grid_file).read_text()).items()}
    base, sweep_id = run_request(args, args.model), new_sweep_id()
    plans = points(base, grid, sweep_id)  # every point checked before anything is prepared or run
    bar = Bar()
    if args.target:
        plans = points({**base, "model": target_for(args, bar)[0]}, grid, sweep_id)
    store = RunStore(args.runs)
    with sigterm_cancels() as cancel:
        try:
            run_ids = run_sweep(plans, store, bar, cancel)
        finally:
            bar.close()
    return {"sweep": plans[0].config.sweep, "points": [sweep_point(store, run_id) for run_id in run_ids]}


def cmd_eval(args) -> dict:
    values, problems = parse(EvalConfig, eval_request(args), "evaluation")
    if problems:
        raise ValueError("; ".join(problems))
    if args.judge:
        return judged(args)
    evaluation = EvalConfig(**values)
    bar = Bar()
    loaded, data = cached_model(args.model), cached_data(args.data)
    sel = selection(data, data.split("forget"), data.split("retain"), evaluation)
    report = evaluate(loaded.model, loaded.tokenizer, sel.forget + sel.retain_eval, sel.mia_members, sel.mia_nonmembers,
                      evaluation, bar, mia_source=sel.mia_source, notes=sel.notes)
    bar.close()
    return {k: v for k, v in report.to_dict().items() if k != "rows"}


def judged(args) -> dict:
    """--judge MODEL: MODEL read as if a run had unlearned it from the original (--original, or with --target the
    prepared target of --model): both evaluations and the verdict, against the original's oracle where it is
    prepared. `--judge oracle` judges that oracle itself: what a perfect unlearning reads."""
    bar = Bar()
    try:
        if not (args.target or args.original):
            raise ValueError("--judge needs the model it was unlearned from: --original MODEL, or --target")
        original = target_for(args, bar)[0] if args.target else args.original
        data = cached_data(args.data)
        request = {"model": original, "data": args.data, "eval": eval_request(args),
                   "forget_ids": [i.strip() for i in (args.forget_ids or "").split(",") if i.strip()]
                   or [r.id for r in data.split("forget") if args.forget_kind in (None, r.kind)]}
        plan = make_plan(request)
        judged_model = args.judge
        if judged_model == "oracle":  # prepared (and cached) if missing
            judged_model = str(oracle_folder(original, data) or prepare_oracle(original, data, bar)[0])
        before = evaluate_model(original, plan.selection, plan.config, lambda f, s: bar(0.5 * f, f"original: {s}"), None)
        after = evaluate_after(plan, cached_model(original), cached_model(judged_model).model,
                               lambda f, s: bar(0.5 + 0.5 * f, f"judged model: {s}"), None)
    finally:
        bar.close()
    return {"original": original, "judged": judged_model, "forget_ids": plan.config.forget_ids,
            "verdict": judge(before, after).to_dict(),
            **{name: {k: v for k, v in r.to_dict().items() if k not in ("rows", "reference")}
               for name, r in (("before", before), ("after", after))}}


def cmd_probe(args) -> dict:
    names = [n.strip() for n in args.probes.split(",") if n.strip()]
    values = {name: {o.name: getattr(args, f"{name}_{o.name}") for o in options(probe.Options)
                     if getattr(args, f"{name}_{o.name}") is not None}
              for name, probe in PROBES.items() if name in names}
    bar = Bar()
    entries = run_probes(RunStore(args.runs), args.run_id, names, values, progress=bar)
    bar.close()
    return {"run_id": args.run_id, "probes": {name: probe_summary(entry) for name, entry in entries.items()}}


def cmd_runs(args) -> dict | list:
    store = RunStore(args.runs)
    if args.run_id:
        return run_details(store, args.run_id)
    return [{**run_listing(store.read(r)), "probes": list(store.probes(r))} for r in store.ids()]


def cmd_report(args) -> dict:
    out = write_report(RunStore(args.runs), args.run_ids, args.out)
    return {"report": str(out), "runs": args.run_ids, "bytes": out.stat().st_size}


def cmd_delete(args) -> dict:
    RunStore(args.runs).delete(args.run_id)
    return {"deleted": args.run_id}


def describe(option: Option) -> dict:
    return {"type": option.kind.__name__, "default": option.default, "help": option.help,
            "choices": list(option.choices) or None, "bounds": option.bounds() or None}


def cmd_subset(args) -> dict:
    out = write_subset(args.folder, args.out, args.per_group, part=args.part or "validation", seed=args.seed)
    data = load_data(data_source(str(out), args.part))
    return {"folder": str(out), "part": args.part or "validation", "forget": len(data.split("forget")), "retain": len(data.split("retain")),
            "mia_members": len(data.mia_members), "mia_nonmembers": len(data.mia_nonmembers)}


def cmd_metrics(args) -> list:
    return [m.describe() for m in METRICS.values()]


def cmd_methods(args) -> list:
    return [
        {"name": m.name, "title": m.title, "paper": m.paper, "options": {o.name: describe(o) for o in options(m.Config)},
         "presets": [dataclasses.asdict(p) for p in m.presets]}
        for m in METHODS.values() if m.unlearns
    ]


def add_option(parser: argparse.ArgumentParser, option: Option, prefix: str = "") -> None:
    """A flag generated from a config option: its help, choices, bounds and default are the option's own. Values
    are read as text and checked by the run plan (a probe's by its options), so a flag and the app's control refuse
    the same things. A `prefix` (a probe's name, "target") makes --prefix-name, stored as prefix_name; an option's
    own flags replace the made-up one."""
    name = f"{prefix}_{option.name}" if prefix else option.name
    flags = list(option.flags) or [f"--{name.replace('_', '-')}"]
    facts = [f"one of {', '.join(option.choices)}" if option.choices else "", option.bounds(), f"default {option.default}"]
    text = f"{option.help} ({'; '.join(f for f in facts if f)})".replace("%", "%%")
    if option.kind is bool:
        parser.add_argument(*flags, dest=name, action=argparse.BooleanOptionalAction, default=None, help=text)
    else:
        parser.add_argument(*flags, dest=name, default=None, metavar=option.kind.__name__.upper(), help=text)


def parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog="python -m unlearning", description="Unlearning Studio, headless.", epilog=EXIT_HELP,
                                formatter_class=formatter)
    sub = p.add_subparsers(dest="command", required=True)

    def model_data(sp):
        sp.add_argument("--model", default="default", help="'default' (offline SmolLM2-135M), 'tiny', a folder or a hub id")
        sp.add_argument("--data", default="bundled", help="'bundled', a LUME folder or hub id, a TOFU json, or your CSV/JSONL/parquet")
        part_opt(sp)

    def part_opt(sp):
        sp.add_argument("--part", choices=PARTS, help="LUME: the part of a folder or hub copy holding both to use "
                                                      "(default validation); recorded with the data, e.g. FOLDER#train")

    def eval_opts(sp):
        for option in EVAL_FLAGS:
            add_option(sp, option)
        sp.add_argument("--official", dest="mode", action="store_const", const="official",
                        help="same as --mode official: the SemEval protocol (one prompt at a time in bf16, 256 new "
                             "tokens, every retain row, the data's own MIA files, MMLU when reachable); slow on a CPU")

    def target_opts(sp):
        for option in TARGET_FLAGS:
            add_option(sp, option, "target")
        sp.add_argument("--oracle", action=argparse.BooleanOptionalAction, default=True,
                        help="with the target, prepare its oracle: the same base and settings on the retain split only, "
                             "a model that never saw the forget set; every verdict reads the run against it (cached; "
                             "about as long as the target)")

    sp = sub.add_parser("prepare-target", help="fine-tune --model on --data until it memorises it (cached)")
    model_data(sp), target_opts(sp)
    sp.set_defaults(func=cmd_prepare_target)

    def run_opts(sp):
        model_data(sp), target_opts(sp)
        sp.add_argument("--target", action="store_true",
                        help="run on the memorised target of --model on --data (prepared if missing)")
        sp.add_argument("--method", default=TrainConfig.method,
                        help=f"one of {', '.join(m for m, c in METHODS.items() if c.unlearns)}")
        sp.add_argument("--set", action="append", type=parse_option, default=[], metavar="KEY=VALUE",
                        help="a method option, e.g. alpha=30; `methods` lists each method's options with their bounds")
        sp.add_argument("--preset", help="a tested recipe of the method (`methods` lists them); flags given override it")
        sp.add_argument("--forget-ids", help="comma-separated record ids (default: the whole forget split)")
        sp.add_argument("--retain-ids", help="comma-separated record ids to keep (default: the retain split, less any "
                                             "sample chosen to forget)")
        sp.add_argument("--forget-n", metavar="N", help="forget N random samples of the forget split (drawn with --seed)")
        sp.add_argument("--forget-kind", choices=["sc", "qa"], help="only completions (sc) or questions (qa)")
        for option in options(TrainConfig):
            add_option(sp, option)
        eval_opts(sp)
        sp.add_argument("--save-weights", action="store_true",
                        help="save the unlearned model as runs/RUN_ID/model: `probe RUN_ID` and `eval --model` need it "
                             "(off by default: a script's runs and sweeps would each write a model; the app saves)")
        sp.add_argument("--name", default="")
        sp.add_argument("--runs", default="runs", help="runs directory")

    sp = sub.add_parser("run", help="unlearn some forget samples, evaluate before and after, save the run",
                        epilog=EXIT_HELP, formatter_class=formatter)
    run_opts(sp)
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("sweep", help="run a grid of settings, each point a saved run tagged with the sweep id")
    run_opts(sp)
    sp.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2",
                    help="a setting and its values: lr=1e-5,3e-5, alpha=10,30, method=grad_diff,npo, seed=0,1, ...: any "
                         "training option or method option")
    sp.add_argument("--grid-file", help="a JSON file {name: [values]} (added to --grid)")
    sp.set_defaults(func=cmd_sweep)

    sp = sub.add_parser("eval", help="score a model on the forget and retain sets, MIA and utility; with --judge, read "
                                     "a model as a run from an original and give the verdict")
    model_data(sp), target_opts(sp)
    eval_opts(sp)
    sp.add_argument("--judge", metavar="MODEL",
                    help="judge MODEL as if a run had unlearned it from the original (a folder, e.g. runs/ID/model; "
                         "'oracle' = the original's oracle, what a perfect unlearning reads): prints the verdict")
    sp.add_argument("--original", help="with --judge: the model it was unlearned from")
    sp.add_argument("--target", action="store_true",
                    help="with --judge: the original is the memorised target of --model on --data (prepared if missing)")
    sp.add_argument("--forget-ids", help="with --judge: comma-separated ids it should have forgotten (default: the "
                                         "whole forget split)")
    sp.add_argument("--forget-kind", choices=["sc", "qa"], help="with --judge and no --forget-ids: only the forget "
                                                                "split's completions (sc) or questions (qa)")
    sp.set_defaults(func=cmd_eval)

    sp = sub.add_parser("probe", help="try to bring a run's forgotten answers back: relearning, quantisation, other "
                                      "prompts; and its distance to the oracle. Saved in the run's probes.json")
    sp.add_argument("run_id")
    sp.add_argument("--probes", default=",".join(PROBES), help=f"comma-separated, from: {', '.join(PROBES)}")
    sp.add_argument("--runs", default="runs", help="runs directory")
    for name, probe in PROBES.items():
        group = sp.add_argument_group(f"{name} ({probe.title})", probe.asks)
        for option in options(probe.Options):
            add_option(group, option, prefix=name)
    sp.set_defaults(func=cmd_probe)

    sp = sub.add_parser("runs", help="list saved runs (damaged ones with what is wrong), or show one")
    sp.add_argument("run_id", nargs="?")
    sp.add_argument("--runs", default="runs")
    sp.set_defaults(func=cmd_runs)

    sp = sub.add_parser("report", help="one self-contained HTML page of runs to share (opens offline): verdict, scores, "
                                       "interactive curves and trade-off plot, generations, probes, settings")
    sp.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    sp.add_argument("--out", required=True, help="the HTML file to write, e.g. report.html")
    sp.add_argument("--runs", default="runs")
    sp.set_defaults(func=cmd_report)

    sp = sub.add_parser("delete", help="delete a saved run (a damaged one too); a run in progress is refused")
    sp.add_argument("run_id")
    sp.add_argument("--runs", default="runs")
    sp.set_defaults(func=cmd_delete)

    sp = sub.add_parser("subset", help="write a smaller LUME folder: N rows per split x task x kind, with its MIA files")
    sp.add_argument("folder", help="a LUME folder, e.g. ../shared/data/lume-validation")
    sp.add_argument("--per-group", type=int, default=3, help="rows of each split x task x kind")
    sp.add_argument("--out", required=True, help="folder to write (created)")
    sp.add_argument("--seed", type=int, default=0)
    part_opt(sp)
    sp.set_defaults(func=cmd_subset)

    sp = sub.add_parser("methods", help="list the unlearning methods and their options")
    sp.set_defaults(func=cmd_methods)

    sp = sub.add_parser("metrics", help="list every metric: what it measures, which way is better, chance and ideal")
    sp.set_defaults(func=cmd_metrics)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "data", None) and getattr(args, "part", None):
        args.data = data_source(args.data, args.part)  # one string names the data everywhere, a run's config.json too
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print(json.dumps({"error": "stopped by the user"}))
        return EXIT_CODES["cancelled"]
    except BAD_INPUT as error:
        print(json.dumps({"error": user_message(error)}))
        return EXIT_CODES["bad input"]
    except (OSError, RuntimeError, MemoryError) as error:
        print(json.dumps({"error": user_message(error)}))
        return EXIT_CODES["failed"]
    print(json.dumps(result, indent=1, default=str))
    if args.command == "run":
        return EXIT_CODES.get(result["status"], EXIT_CODES["failed"])
    return 0
