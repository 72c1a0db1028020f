"""The package's layers point down only, and no module imports itself back (lazy imports count)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "workbench"

# Lowest first. A module may import its own layer and the layers below, never one above.
LAYERS = [
    ("foundation", {"errors", "version", "dashboards", "polling", "queries", "threads", "unpickling", "memory"}),
    ("storage", {"store", "layout", "signing", "legacy_catalog", "jobs", "records"}),
    ("data", {"data", "recovery"}),
    ("algorithms and evaluation", {"algorithms", "evaluation", "explanations", "splits", "topn"}),
    ("search", {"search"}),
    ("training and tuning", {"training", "tuning", "insight"}),
    ("models and recommendations", {"recommend", "models", "comparison", "export"}),
    ("workspace", {"base", "workspace", ""}),
    ("front doors", {"retrain", "worker", "doctor", "cli", "ui", "demo", "voila_download", "voila_handlers",
                     "voila_kernels", "voila_server"}),
]


def module_names() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Each module's imports of package modules, TYPE_CHECKING blocks excluded."""
    edges = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for node in ast.walk(tree)
                       if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets = [f"{module}.{alias.name}" for alias in node.names] + [module]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):  # not its own package
                    edges[name].add(target)
    return edges


def layer_of(module: str) -> int:
    part = module.split(".")[1] if "." in module else ""
    for index, (_, members) in enumerate(LAYERS):
        if part in members:
            return index
    raise AssertionError(f"{module} is in no layer: add it to tests/test_layers.py's LAYERS")


def test_every_import_points_to_the_same_layer_or_below():
    modules = module_names()
    upward = [f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
              for a, targets in imports(modules).items() for b in targets if layer_of(b) > layer_of(a)]
    assert upward == []


def test_no_import_cycle():
    edges = imports(module_names())
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target):] + [module, target]) if target in path
                              else f"{module} -> {target}")
            elif target not in state:
                visit(target, path + [module])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [])
    assert cycles == []
