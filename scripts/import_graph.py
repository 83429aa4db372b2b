"""The import graph of bigmodel_cli: top-level modules, import edges, cycles and upward imports.

    python scripts/import_graph.py            # a table of the counts, then every cycle and upward import

Every `import` / `from ... import` of a bigmodel_cli module counts as an edge, the ones inside
functions too (a lazy import is still a dependency). A layer is a top-level package or module of
bigmodel_cli; LAYERS lists them from the bottom up, and an import of a higher layer is "upward".
tests/test_architecture.py asserts no cycles and no upward imports with the same functions.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "bigmodel_cli"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

# Bottom to top: a module may import its own layer and the layers below it, never one above.
LAYERS = (
    "errors",  # UserError and how an error is printed as one line
    "extras",  # optional dependencies (matplotlib: the plots extra), asked for in one line
    "atomic",  # files written whole or not at all (temp file, fsync, rename)
    "process_state",  # state that crosses processes: environment variables, ranks
    "console",  # what the terminal shows: log filter, number format, progress for slow work
    "config",  # the conf/ tree: catalogue, contracts, resolvers, validation, instantiate
    "models",  # backbones (nn.Module)
    "data",  # LightningDataModules and their sources
    "checkpoints",  # safe checkpoint files
    "callbacks",  # Lightning callbacks named by conf/
    "lightning_modules",  # the LightningModules: training loop, optimizers, regularizers, metrics
    "runs",  # run records, failed jobs, resume, DDP job hand-off
    "search",  # Optuna studies: storage, samplers, pruners, search space, a job reporting to its trial
    "training",  # a run's settings read once, its pieces built from config and assembled; strategies
    "deploy",  # after training: export (ONNX, torch.export), quantisation, pruning, their measurements
    "explain",  # after training: attributions, their faithfulness, their pictures
    "commands",  # one module per subcommand, and the Hydra app that runs them
    "cli",  # start-up: argv, help, dispatch (no torch)
    "__main__",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(tree: ast.AST, importer: str, is_package: bool) -> set[str]:
    """bigmodel_cli modules this module imports (a `from pkg import name` of a submodule counts as it)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = importer.split(".")[: len(importer.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.split(".")[0] != PACKAGE:
                continue
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def graph() -> dict[str, set[str]]:
    """module -> the bigmodel_cli modules it imports (only names that are modules)."""
    files = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
    edges = {}
    for name, path in files.items():
        targets = imported(ast.parse(path.read_text()), name, path.name == "__init__.py")
        edges[name] = {t for t in targets if t in files and t != name and t != PACKAGE}
    return edges


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def rank(module: str) -> int:
    name = layer(module)
    return LAYERS.index(name) if name in LAYERS else -1


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def upward(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) pairs where the imported module's layer is above the importer's, or
    either module is in no layer (a new top-level module must be placed in LAYERS)."""
    return sorted(
        (a, b) for a, targets in edges.items() for b in targets if rank(a) < 0 or rank(b) < 0 or rank(b) > rank(a)
    )


def top_level_modules() -> list[str]:
    return sorted(p.stem for p in ROOT.glob("*.py") if p.stem != "__init__")


def main() -> int:
    edges = graph()
    found_cycles, found_upward = cycles(edges), upward(edges)
    rows = [
        ("top-level modules", len(top_level_modules())),
        ("packages", sum(1 for p in ROOT.glob("*/__init__.py"))),
        ("modules", len(edges)),
        ("import edges", sum(map(len, edges.values()))),
        ("cycles", len(found_cycles)),
        ("upward imports", len(found_upward)),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}}  count")
    for name, count in rows:
        print(f"{name:<{width}}  {count:>5}")
    for component in found_cycles:
        print("cycle:", " -> ".join(component))
    for a, b in found_upward:
        print(f"upward: {a} -> {b} ({layer(a)} below {layer(b)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
