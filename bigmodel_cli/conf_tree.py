"""Where the Hydra config tree is, and what groups and options it holds.

Read by `bigmodel --help`, by validation (to name valid choices) and by the tests that are
generated from the tree. Imports nothing heavy: `--help` must stay instant.
"""

from __future__ import annotations

from pathlib import Path

# Groups whose options are listed to users; `hydra` and `paths` are plumbing.
PLUMBING_GROUPS = ("hydra", "paths")


def conf_dir() -> Path:
    """The config tree: inside the installed wheel, else at the top of the source checkout."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "conf", package.parent / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"bigmodel's config tree is missing (looked in {package}/conf and {package.parent}/conf)")


def primary_configs() -> list[str]:
    """Names of the top-level configs, one per subcommand (train, test, ...)."""
    return sorted(p.stem for p in conf_dir().glob("*.yaml"))


def groups(include_plumbing: bool = False) -> dict[str, list[str]]:
    """Every config group (nested ones as `a/b`) mapped to its sorted option names."""
    root = conf_dir()
    found: dict[str, list[str]] = {}
    for yaml in sorted(root.rglob("*.yaml")):
        if yaml.parent == root or yaml.stem.startswith("_"):  # _name.yaml: a shared base, not an option
            continue
        group = yaml.parent.relative_to(root).as_posix()
        if not include_plumbing and group.split("/")[0] in PLUMBING_GROUPS:
            continue
        found.setdefault(group, []).append(yaml.stem)
    return {g: sorted(opts) for g, opts in sorted(found.items())}


def describe(group: str, option: str) -> str:
    """The option's one-line summary: the first comment line of its YAML file."""
    path = conf_dir() / group / f"{option}.yaml"
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#") and not stripped.startswith("# @package"):
            return stripped.lstrip("#").strip()
        if stripped and not stripped.startswith("#"):
            break
    return ""
