"""The house's layout rules, checked on the source: no import circle in the library, no metric fact outside the
registry."""
import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def module_name(file: Path) -> str:
    parts = file.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def library_imports() -> dict[str, set[str]]:
    """Each unlearning module -> the unlearning modules it imports, wherever the import statement is (a function-level
    or TYPE_CHECKING import that closes a circle is still a circle)."""
    modules = {module_name(f): f for f in (ROOT / "unlearning").rglob("*.py")}
    graph = {}
    for name, file in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "unlearning":
                # `from unlearning.evaluation import fluency` imports the submodule, `... import METRICS` the package
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    imported.add(sub if sub in modules else node.module)
        graph[name] = imported - {name}
    return graph


def test_the_library_has_no_import_circle():
    graph = library_imports()
    assert "unlearning.plan" in graph["unlearning.experiment"]  # the walk sees real imports
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as error:
        raise AssertionError(f"import circle: {' -> '.join(error.args[1])}") from None


def test_the_circle_check_finds_a_circle():
    graph = library_imports()
    graph["unlearning.plan"] = graph["unlearning.plan"] | {"unlearning.experiment"}
    try:
        TopologicalSorter(graph).prepare()
    except CycleError:
        return
    raise AssertionError("a circle plan <-> experiment went unseen")


# ------------------------------------------------------------------------------------------ metric facts, registered

DIRECTIONS = {"higher", "lower", "0.5"}
DIRECTION_WORDS = ("lower is better", "higher is better", "best at 0.5", "↑ higher", "↓ lower", "→ 0.5")


def metric_facts_outside_the_registry(source: str) -> list[str]:
    """Metric display facts written in code instead of read from unlearning.evaluation.metrics: a direction ("higher"),
    its words or arrow ("lower is better"), a chance level read with a default of its own (`.get("chance", 0.25)`, a
    `chance=0.25` parameter), the final score's parts listed again. A metric's own declaration (`@metric(better=...)`)
    is the registry; docstrings and multi-line prose (the Learn tab's lessons) are not facts a view draws with."""
    tree = ast.parse(source)
    declared = {id(kw.value) for node in ast.walk(tree) if isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "metric" for kw in node.keywords}
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body
                  and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in declared | docstrings:
            if node.value in DIRECTIONS or ("\n" not in node.value and any(w in node.value for w in DIRECTION_WORDS)):
                found.append(f"line {node.lineno}: {node.value!r}")
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "get" and node.args \
                and isinstance(node.args[0], ast.Constant) and node.args[0].value == "chance" \
                and any(isinstance(a, ast.Constant) for a in node.args[1:]):
            found.append(f"line {node.lineno}: a chance level with a default of its own")
        if isinstance(node, ast.arguments):
            named = [*node.posonlyargs, *node.args][-len(node.defaults):] if node.defaults else []
            for arg, default in [*zip(named, node.defaults), *zip(node.kwonlyargs, node.kw_defaults)]:
                if arg.arg == "chance" and isinstance(default, ast.Constant) and default.value is not None:
                    found.append(f"line {arg.lineno}: chance = {default.value}")
        if isinstance(node, (ast.Tuple, ast.List)) and id(node) not in declared:
            names = {e.value for e in ast.walk(node) if isinstance(e, ast.Constant)}
            if {"task_aggregate", "mia_score"} <= names:
                found.append(f"line {node.lineno}: the final score's parts")
    return found


def test_no_metric_fact_outside_the_registry():
    registry = ROOT / "unlearning" / "evaluation" / "metrics.py"
    found = {str(f.relative_to(ROOT)): facts for f in [*(ROOT / "unlearning").rglob("*.py"), *(ROOT / "app").rglob("*.py")]
             if f != registry and (facts := metric_facts_outside_the_registry(f.read_text(encoding="utf-8")))}
    assert found == {}


@pytest.mark.parametrize("code", [
    '_BETTER = {"lower": "↓ lower", "higher": "↑ higher"}',
    'colours = [moved_colour("higher", x, y) for x, y in pairs]',
    'hint = "lower is better"',
    'chance = report.metrics["utility"].get("chance", 0.25)',
    'def utility_bars(before, after, chance: float = 0.25): pass',
    'FINAL_PARTS = (("task_aggregate", "task aggregate"), ("mia_score", "MIA score"))',
    'for key in ("final", "task_aggregate", "mia_score", "utility"): pass',
])
def test_the_registry_check_finds_each_kind_of_fact(code):
    assert metric_facts_outside_the_registry(code)


def test_a_metric_declaration_and_prose_are_not_flagged():
    code = ('@metric(name="x", better="lower", chance=0.25, parts=("task_aggregate", "mia_score"))\n'
            'def x(ctx):\n    """Which way is better: "lower"."""\n'
            'LESSON = """On forget sets lower is better,\non retain higher is better."""\n')
    assert metric_facts_outside_the_registry(code) == []


def test_every_evaluation_module_registers_itself_with_the_package():
    """A new metric module needs no import elsewhere: importing unlearning.evaluation imports every module in it."""
    modules = {f"unlearning.evaluation.{f.stem}" for f in (ROOT / "unlearning" / "evaluation").glob("*.py")
               if f.stem != "__init__"}
    script = "import sys, unlearning.evaluation; print(' '.join(m for m in sys.modules if m.startswith('unlearning.evaluation.')))"
    loaded = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert modules <= set(loaded.split())


# ------------------------------------------------------------------------------------------------ one home each

HOMES = {
    # a run's config, whole files, process liveness and the store: four concepts, four modules
    "RunConfig": "unlearning/run_config.py", "parse_run_config": "unlearning/run_config.py",
    "atomic_path": "unlearning/atomic.py", "write_atomic": "unlearning/atomic.py", "to_json": "unlearning/atomic.py",
    "owner_alive": "unlearning/liveness.py", "this_process": "unlearning/liveness.py",
    "RunStore": "unlearning/runs.py",
    # what a model is and what it takes to train
    "decoder_layers": "unlearning/models.py", "lora_parameters": "unlearning/models.py",
    "model_facts": "unlearning/models.py", "training_modes": "unlearning/models.py",
    "suggested_training": "unlearning/models.py", "TINY_LEARNING_RATE": "unlearning/models.py",
    # the records a run trains on are part of its plan; the retain set it keeps by default is the data's rule
    "Selection": "unlearning/plan.py", "selection": "unlearning/plan.py", "UnlearningData.retain_set": "unlearning/data/records.py",
    # every summary of a run, for the app's tables, the HTML report and the CLI
    "run_summary": "unlearning/summary.py", "run_details": "unlearning/summary.py",
    "run_listing": "unlearning/summary.py", "sweep_point": "unlearning/summary.py",
}


def definitions(file: Path) -> set[str]:
    """The names a module defines at its top level (functions, classes, constants), and its classes' methods as
    Class.method."""
    tree = ast.parse(file.read_text(encoding="utf-8"))
    names = {f"{c.name}.{n.name}" for c in tree.body if isinstance(c, ast.ClassDef) for n in c.body
             if isinstance(n, ast.FunctionDef)}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def test_each_concept_is_defined_in_its_one_module():
    defined = {}
    for file in [*(ROOT / "unlearning").rglob("*.py"), *(ROOT / "app").rglob("*.py")]:
        for name in definitions(file) & set(HOMES):
            defined.setdefault(name, []).append(str(file.relative_to(ROOT)))
    assert defined == {name: [home] for name, home in HOMES.items()}
