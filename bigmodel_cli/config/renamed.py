"""Targets that moved when bigmodel_cli was split into layered packages.

Configs saved before the move name the old places: a checkpoint's hyper-parameters, a run's
.hydra/config.yaml. They are rewritten when loaded, so an old checkpoint still tests, predicts and
generates; nothing on disk is changed.
"""

from __future__ import annotations

from typing import Any

# Old prefix -> new prefix (a prefix ends at a module or object boundary).
MOVED = {
    "bigmodel_cli.progress.": "bigmodel_cli.callbacks.progress.",
    "bigmodel_cli.timing.": "bigmodel_cli.callbacks.timing.",
    "bigmodel_cli.guards.": "bigmodel_cli.callbacks.guards.",
    "bigmodel_cli.strategies.": "bigmodel_cli.training.strategies.",
    "bigmodel_cli.modules.": "bigmodel_cli.lightning_modules.",
    "bigmodel_cli.runs.RunRecorder": "bigmodel_cli.runs.records.RunRecorder",
}


def current_name(name: Any) -> Any:
    """Where an old dotted name lives now (other values unchanged)."""
    if isinstance(name, str):
        for old, new in MOVED.items():
            if name.startswith(old):
                return new + name[len(old) :]
    return name


def with_current_targets(node: Any) -> Any:
    """A plain config (dicts and lists) with every `_target_` and FSDP auto_wrap name moved."""
    if isinstance(node, dict):
        return {
            key: current_name(value)
            if key == "_target_"
            else [current_name(v) for v in value]
            if key == "auto_wrap" and isinstance(value, list)
            else with_current_targets(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [with_current_targets(item) for item in node]
    return node


def moved_target_overrides(node: Any, path: str = "") -> list[str]:
    """Overrides that move the old names in a saved run config (`--config-path <run>/.hydra`,
    reproduce, resume=) to where they live now, e.g. callbacks.progress_bar._target_=..."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if key == "_target_" and current_name(value) != value:
                found.append(f"{where}={current_name(value)}")
            elif key == "auto_wrap" and isinstance(value, list) and [current_name(v) for v in value] != value:
                found.append(f"{where}=[{','.join(current_name(v) for v in value)}]")
            else:
                found += moved_target_overrides(value, where)
    return found
