"""Headless command line: python -m unlearning prepare-target | run | eval | runs | delete | methods.

Results print as JSON on stdout, a progress bar on stderr; errors print as {"error": ...}, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

from tqdm import tqdm

from unlearning.data import DataError
from unlearning.engine import TrainConfig
from unlearning.evaluate import EvalConfig, evaluate
from unlearning.experiment import cached_data, cached_model, run_experiment, selection
from unlearning.jobs import user_message
from unlearning.methods import METHODS
from unlearning.models import ModelLoadError
from unlearning.options import Option, options
from unlearning.plan import make_plan
from unlearning.runs import Run, RunStore
from unlearning.target import TargetConfig, prepare_target

EXIT_CODES = {"completed": 0, "failed": 1, "bad input": 2, "diverged": 3, "cancelled": 4}
EXIT_HELP = """exit codes (every command; `run` by how the run ended):
  0  completed
  1  failed: the run started and stopped on an error (disk full, out of memory); its folder says why
  2  bad input: nothing was created or changed (a wrong option, id, model or data; also usage errors)
  3  diverged: the loss became NaN or infinite; the curve so far is kept
  4  cancelled: stopped by Ctrl-C or SIGTERM; the curve so far is kept"""
TOKENS = next(o for o in options(EvalConfig) if o.name == "max_new_tokens")
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
def sigterm_cancels() -> Iterator[None]:
    """SIGTERM stops a run as Ctrl-C does (KeyboardInterrupt): the run is marked cancelled and its curve kept."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may handle signals
        yield
        return

    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def target_for(args, bar: Bar) -> tuple[str, dict]:
    data = cached_data(args.data)
    records = data.split("forget") + data.split("retain")
    config = TargetConfig(epochs=args.epochs, learning_rate=args.target_lr, batch_size=args.target_batch_size)
    folder, report = prepare_target(cached_model(args.model), records, config, bar)
    return str(folder), report


def cmd_prepare_target(args) -> dict:
    bar = Bar()
    folder, report = target_for(args, bar)
    bar.close()
    return {"target": folder, **report}


def run_request(args, model: str) -> dict:
    """The run the flags describe, as the run plan takes it: the values as typed, checked there."""
    if args.forget_ids:
        forget_ids = [i.strip() for i in args.forget_ids.split(",") if i.strip()]
    else:
        data = cached_data(args.data)
        seed = args.seed if args.seed is not None else TrainConfig.seed
        draw = int(seed) if str(seed).isdigit() else TrainConfig.seed  # a bad --seed is the plan's to report
        forget_ids = data.sample_forget(args.forget_n or len(data.records), draw, args.forget_kind)
    train = {o.name: getattr(args, o.name) for o in options(TrainConfig) if getattr(args, o.name) is not None}
    return {"model": model, "data": args.data, "forget_ids": forget_ids,
            "train": {"method": args.method, "method_options": dict(args.set), **train},
            "eval": {"max_new_tokens": args.max_new_tokens}, "save_weights": args.save_weights, "name": args.name}


def cmd_run(args) -> dict:
    # Checked on the base model first, so a bad option fails at once, not after minutes of preparing a target.
    plan = make_plan(run_request(args, args.model))
    bar = Bar()
    if args.target:
        plan = make_plan(run_request(args, target_for(args, bar)[0]))
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr)
    store = RunStore(args.runs)
    run_id = store.create(plan.config)
    error = None
    try:
        with sigterm_cancels():
            run_experiment(plan, store, bar, run_id=run_id)
    except KeyboardInterrupt:
        pass  # the run is marked cancelled: the summary and the exit code say so
    except Exception as failure:  # noqa: BLE001 - the run folder records the failure; the user reads a sentence
        error = user_message(failure)
    finally:
        bar.close()
    out = summary(store, run_id)
    if error:
        out["error"] = error
    return {**out, "notes": plan.notes}


def summary(store: RunStore, run_id: str) -> dict:
    run = store.read(run_id)
    out = {**listing(run), "config": run.config.to_dict() if run.config else None}
    for name, report in (("before", run.before), ("after", run.after)):
        if report:
            out[name] = {k: v for k, v in report.items() if k != "rows"}
    out["last_step"] = run.steps[-1] if run.steps else None
    return out


def listing(run: Run) -> dict:
    """One line of `runs`: a damaged run is listed too, with what is wrong and what could still be read."""
    return {"run_id": run.id, **run.status, "method": run.config.train.method if run.config else None,
            "name": run.config.name if run.config else None, "steps": len(run.steps), "problems": run.problems}


def cmd_eval(args) -> dict:
    eval_config = EvalConfig(max_new_tokens=args.max_new_tokens)
    bar = Bar()
    loaded, data = cached_model(args.model), cached_data(args.data)
    sel = selection(data, data.split("forget"), data.split("retain"), retain_eval_size=args.retain_n)
    report = evaluate(loaded.model, loaded.tokenizer, sel.forget + sel.retain_eval, sel.mia_members, sel.mia_nonmembers, eval_config,
                      lambda stage, done, total: bar(done / max(total, 1), stage))
    bar.close()
    return {k: v for k, v in report.to_dict().items() if k != "rows"}


def cmd_runs(args) -> dict | list:
    store = RunStore(args.runs)
    if args.run_id:
        return summary(store, args.run_id)
    return [listing(store.read(r)) for r in store.ids()]


def cmd_delete(args) -> dict:
    RunStore(args.runs).delete(args.run_id)
    return {"deleted": args.run_id}


def describe(option: Option) -> dict:
    return {"type": option.kind.__name__, "default": option.default, "help": option.help,
            "choices": list(option.choices) or None, "bounds": option.bounds() or None}


def cmd_methods(args) -> list:
    return [
        {"name": m.name, "title": m.title, "paper": m.paper, "options": {o.name: describe(o) for o in options(m.Config)}}
        for m in METHODS.values() if m.unlearns
    ]


def add_option(parser: argparse.ArgumentParser, option: Option) -> None:
    """A flag generated from a config option: its help, choices, bounds and default are the option's own. Values
    are read as text and checked by the run plan, so a flag and the app's control refuse the same things."""
    flags = [f"--{option.name.replace('_', '-')}", *option.flags]
    facts = [f"one of {', '.join(option.choices)}" if option.choices else "", option.bounds(), f"default {option.default}"]
    text = f"{option.help} ({'; '.join(f for f in facts if f)})".replace("%", "%%")
    if option.kind is bool:
        parser.add_argument(*flags, dest=option.name, action=argparse.BooleanOptionalAction, default=None, help=text)
    else:
        parser.add_argument(*flags, dest=option.name, default=None, metavar=option.kind.__name__.upper(), help=text)


def parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog="python -m unlearning", description="Unlearning Studio, headless.", epilog=EXIT_HELP,
                                formatter_class=formatter)
    sub = p.add_subparsers(dest="command", required=True)

    def model_data(sp):
        sp.add_argument("--model", default="default", help="'default' (offline SmolLM2-135M), 'tiny', a folder or a hub id")
        sp.add_argument("--data", default="bundled", help="'bundled', a LUME folder or hub id, a TOFU json, or your CSV/JSONL/parquet")

    def target_opts(sp):
        sp.add_argument("--epochs", type=int, default=TargetConfig.epochs)
        sp.add_argument("--target-lr", type=float, default=TargetConfig.learning_rate)
        sp.add_argument("--target-batch-size", type=int, default=TargetConfig.batch_size)

    sp = sub.add_parser("prepare-target", help="fine-tune --model on --data until it memorises it (cached)")
    model_data(sp), target_opts(sp)
    sp.set_defaults(func=cmd_prepare_target)

    sp = sub.add_parser("run", help="unlearn some forget samples, evaluate before and after, save the run",
                        epilog=EXIT_HELP, formatter_class=formatter)
    model_data(sp), target_opts(sp)
    sp.add_argument("--target", action="store_true", help="run on the memorised target of --model on --data (prepared if missing)")
    sp.add_argument("--method", default=TrainConfig.method, help=f"one of {', '.join(m for m, c in METHODS.items() if c.unlearns)}")
    sp.add_argument("--set", action="append", type=parse_option, default=[], metavar="KEY=VALUE",
                    help="a method option, e.g. alpha=30; `methods` lists each method's options with their bounds")
    sp.add_argument("--forget-ids", help="comma-separated record ids (default: the whole forget split)")
    sp.add_argument("--forget-n", type=int, help="forget N random samples of the forget split")
    sp.add_argument("--forget-kind", choices=["sc", "qa"], help="only completions (sc) or questions (qa)")
    for option in options(TrainConfig):
        add_option(sp, option)
    sp.add_argument("--max-new-tokens", default=64, metavar="INT",
                    help=f"{TOKENS.help} ({TOKENS.bounds()}; default 64 here: fewer is faster on a CPU)")
    sp.add_argument("--save-weights", action="store_true", help="save the unlearned model as runs/RUN_ID/model")
    sp.add_argument("--name", default="")
    sp.add_argument("--runs", default="runs", help="runs directory")
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("eval", help="score a model on the forget and retain sets, MIA and utility")
    model_data(sp)
    sp.add_argument("--max-new-tokens", default=TOKENS.default, metavar="INT", help=f"{TOKENS.help} ({TOKENS.bounds()})")
    sp.add_argument("--retain-n", type=int, default=40, help="retain samples to score")
    sp.set_defaults(func=cmd_eval)

    sp = sub.add_parser("runs", help="list saved runs (damaged ones with what is wrong), or show one")
    sp.add_argument("run_id", nargs="?")
    sp.add_argument("--runs", default="runs")
    sp.set_defaults(func=cmd_runs)

    sp = sub.add_parser("delete", help="delete a saved run (a damaged one too); a run in progress is refused")
    sp.add_argument("run_id")
    sp.add_argument("--runs", default="runs")
    sp.set_defaults(func=cmd_delete)

    sp = sub.add_parser("methods", help="list the unlearning methods and their options")
    sp.set_defaults(func=cmd_methods)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
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
    return EXIT_CODES.get(result["status"], EXIT_CODES["failed"]) if args.command == "run" else 0
