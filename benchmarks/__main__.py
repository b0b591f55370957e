"""Benchmark of the studio's hot paths, each figure a ratio against a reference measured in the same process, or a
wall time against its goal.

    python -m benchmarks                                # every section, under 10 minutes on a 2-core CPU (make bench)
    python -m benchmarks --quick --sections step,eval   # a smoke run in under 2 minutes, not a measurement

Sections, one module each in this folder: step (full-weight unlearning step vs a Trainer), last_k (last 8 blocks with
the frozen-prefix cache vs a Trainer with the same blocks frozen), scoring (what in-run scores cost a default run),
sweep (an 8-point sweep vs 8 separate `run` processes), eval (batched generation vs the official
one-at-a-time loop), target (wall time to a memorised target), load (default model, first and second launch),
1b (memory and speed of a 1B model). Asked for by name: first_verdict (target, oracle, a preset run and the
quantisation probe from an empty cache, per stage; several minutes), official (official mode against the organisers'
one-at-a-time loop on 36 LUME rows; several minutes) and gpu (a whole run of a 1B model on CUDA; the
tiny model elsewhere). The machine may be shared, so absolute times are noisy: the sides of each
ratio run interleaved in one process so they share the noise. Results print as tables and go to --out as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import psutil

from benchmarks import evaluation, first_verdict, gpu, last_k, load, official, one_b, scoring, step, sweep, target
from benchmarks.common import Context, machine, pick_threads, set_threads, table

SECTIONS = {"step": step, "last_k": last_k, "scoring": scoring, "sweep": sweep, "eval": evaluation, "target": target,
            "load": load, "1b": one_b, "first_verdict": first_verdict, "official": official, "gpu": gpu}
# asked for by name: the first verdict alone takes longer than the 10 minutes the rest may, official mode's 256 tokens
# one prompt at a time several minutes, the GPU run needs CUDA
DEFAULT = [name for name in SECTIONS if name not in ("first_verdict", "official", "gpu")]


def write(out: Path, results: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--sections", default=",".join(DEFAULT),
                        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all but first_verdict, official and gpu)")
    parser.add_argument("--quick", action="store_true", help="fewer steps, prompts and tokens: a smoke run, not a measurement")
    parser.add_argument("--out", default="runs/bench_results.json", help="where the JSON results go")
    parser.add_argument("--batch-size", type=int, default=4, help="forget (and retain) examples per step (the studio's default is 4)")
    parser.add_argument("--threads", default="auto", help="torch threads, or 'auto': all cores minus those busy with other work")
    parser.add_argument("--eval-batch-size", type=int, default=64, help="prompts per generate batch (the studio's EvalConfig default)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="tokens generated per prompt in the eval section (default 64, quick 16)")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; choose from {','.join(SECTIONS)}")
    set_threads(pick_threads(args.threads))
    ctx = Context(quick=args.quick, batch_size=args.batch_size, eval_batch_size=args.eval_batch_size, max_new_tokens=args.max_new_tokens)

    out = Path(args.out)
    seconds: dict[str, float] = {}  # each section's wall time: `make bench` must stay under 10 minutes, --quick under 2
    results: dict = {"machine": machine(), "quick": args.quick, "section_seconds": seconds}
    m = results["machine"]
    print(f"{m['processor']} ({m['cpu_capability']}, bf16 matmuls: {m['bf16_matmul']}), {m['cores']} cores, {m['threads']} torch "
          f"threads, load average {tuple(round(x, 2) for x in m['load_average'])}, {m['memory_available_gib']:.1f} GiB available")
    # torch.compile's on-disk cache would make compiling look cheaper than on a user's first run: start it empty
    with tempfile.TemporaryDirectory(prefix="unlearning-bench-inductor-") as inductor_cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = inductor_cache
        for name in sections:
            start = time.perf_counter()
            results[name] = SECTIONS[name].run(ctx)
            seconds[name] = time.perf_counter() - start
            print(f"\n{name} ({seconds[name]:.0f} s).", end="")
            SECTIONS[name].show(results[name])
            write(out, results)  # after every section: a later failure keeps what was measured

    if args.quick:
        print("\n--quick: a smoke run of every path, not a measurement")
    table("Summary: each figure next to its goal", [row for name in sections for row in SECTIONS[name].headline(results[name])])
    results["load_average_at_end"] = psutil.getloadavg()
    write(out, results)
    print(f"\nsections took {sum(seconds.values()) / 60:.1f} min in all (goal: under {2 if args.quick else 10} min); load "
          f"average at end {tuple(round(x, 2) for x in results['load_average_at_end'])}; results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
