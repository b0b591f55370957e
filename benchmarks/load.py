"""Section "load": time to a usable default model on a first launch (empty cache: the GGUF is converted) and a
second one, each launch a fresh process so nothing is cached in memory (the OS file cache still is). --quick times
a second launch only, on the cache already there."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from benchmarks.common import Context, table

# Runs in a fresh interpreter and prints its clock at each stage.
_CHILD = """
import json, time
import torch
from unlearning.models import load_model
imported = time.time()
loaded = load_model("default")
ready = time.time()
with torch.inference_mode():
    loaded.model(**loaded.tokenizer("Hello", return_tensors="pt"))
print(json.dumps({"imported": imported, "loaded": ready, "usable": time.time()}))
"""


def launch(env: dict) -> dict:
    start = time.time()
    proc = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"launch failed:\n{proc.stderr[-2000:]}")
    t = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "seconds_to_usable": t["usable"] - start, "interpreter_and_imports": t["imported"] - start,
        "load_model": t["loaded"] - t["imported"], "first_forward": t["usable"] - t["loaded"],
    }


def run(ctx: Context) -> dict:
    if ctx.quick:
        return {"second": launch(dict(os.environ))}
    with tempfile.TemporaryDirectory(prefix="unlearning-cache-") as cache:
        env = {**os.environ, "UNLEARNING_CACHE": cache}
        results = {"first": launch(env), "second": launch(env)}
    results["second_over_first"] = results["second"]["seconds_to_usable"] / results["first"]["seconds_to_usable"]
    return results


def show(result: dict) -> None:
    table("Load: bundled default model, each launch a fresh process", [
        {"launch": k, "s to usable": result[k]["seconds_to_usable"], "interpreter+imports": result[k]["interpreter_and_imports"],
         "load_model": result[k]["load_model"], "first forward": result[k]["first_forward"]} for k in ("first", "second") if k in result
    ])
    if "first" in result:
        print(f"  first launch converts the GGUF into the cache; second launch takes {result['second_over_first']:.0%} of the first")


def headline(result: dict) -> list[dict]:
    first = f" vs {result['first']['seconds_to_usable']:.1f} s" if "first" in result else ""
    return [{"figure": "default model, second launch vs first", "value": f"{result['second']['seconds_to_usable']:.1f} s{first}",
             "goal": "-", "verdict": "-", "same results": "-"}]
