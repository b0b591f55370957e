"""The house's layout rules, checked on the source: no import circle in the library."""
import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

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
