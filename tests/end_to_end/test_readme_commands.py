"""Every `bigmodel ...` command in README.md's code blocks runs, literally, in README order.

Only a short-run suffix is added (`debug=limit` to training-like commands that pick no debug
option, `max_new_tokens=` to generate), placeholders such as `outputs/train/<run>` become the newest
run made by the commands before (`<other run>`: the one before it), and the files a command names
(`reviews.csv`, and the files the README shows, such as `my_pkg/models.py`) are written first, and the
directory is on PYTHONPATH, as "Your own code" says (`export PYTHONPATH=$PWD`).
The exit code must be the one the README shows (`(exit 2)` after a command), else 0. Lines that
need what this machine lacks are skipped, each by name in SKIPPED with the reason. Commands that
start several processes (DDP, launchers, `python -m`) run as processes; the rest in this process.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.readme import write_readme_files

README = Path(__file__).resolve().parents[2] / "README.md"
PLACEHOLDER = re.compile(r"outputs/train/<run>")
OTHER_PLACEHOLDER = re.compile(r"outputs/train/<other run>")
# Lines skipped, by a pattern (regular expression) of the command, with the reason.
SKIPPED = {
    "^torchrun --nnodes=2": "needs two machines (tests/training/test_distributed.py runs two torchrun nodes on loopback)",
    "^torchrun --nproc_per_node=2 --max-restarts": "a restart needs a killed worker (tests/training/test_clusters.py "
    "kills one and checks the run goes on)",
    "^srun ": "needs a SLURM cluster (tests/training/test_clusters.py runs srun on a real one-node cluster)",
    "launcher=submitit_slurm": "needs a SLURM cluster (tests/training/test_clusters.py runs such a sweep on a real one)",
    "accelerator=gpu": "needs a CUDA GPU",
    "storage=postgresql://": "needs a PostgreSQL server (tests/search/test_workers.py starts one and runs two workers on it)",
    "tracking_uri=http://": "needs an MLflow server (tests/runs/test_tracking.py starts one and reads the run back)",
    "accelerator=fsdp": "needs CUDA GPUs (FSDP is GPU-only in Lightning)",
    r"data=imdb(?!.*data\.path=)": "downloads IMDB from the Hugging Face hub, and this machine has no "
    "network (the same loader reads local copies in tests/data/test_text_data.py)",
    **(
        {}
        if Path("/usr/share/games/fortunes").is_dir()
        else {
            r"data=fortunes(?!.*data\.root=)": "reads Debian's fortunes package, not installed here (.ci/run "
            "installs it; tests/data/test_corpora.py reads written fortune files)"
        }
    ),
}
TRAINING = ("train", "validate", "test", "predict", "lr-find")


def readme_commands() -> list[tuple[str, int]]:
    """(command line, expected exit code) for each bigmodel command in README code blocks."""
    lines = README.read_text().splitlines()
    found, i = [], 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("    ") and re.match(r"(bigmodel|python -m bigmodel_cli|torchrun|srun)\b", line.strip()):
            command = line.strip()
            while command.endswith("\\"):  # continued on the next line
                i += 1
                command = command[:-1].rstrip() + " " + lines[i].strip()
            j = i + 1
            comment = command.partition(" #")[2]
            while j < len(lines) and lines[j].strip().startswith("#"):  # the output shown under it
                comment += " " + lines[j]
                j += 1
            code = re.search(r"\bexit (\d)", comment)
            expected = int(code.group(1)) if code else 0
            found.append((command.split(" #")[0].strip(), expected))
        i += 1
    return found


def skip_reason(command: str) -> str | None:
    return next((reason for pattern, reason in SKIPPED.items() if re.search(pattern, command)), None)


def as_run(argv: list[str]) -> list[str]:
    """The same command with the short-run suffix."""
    if argv[0] == "generate":
        return [*argv, "max_new_tokens=20"]
    # A saved config (--config-path, resume=<run dir>) has no defaults list to take debug=, and is
    # short already when the run it comes from was.
    saved = any(a.startswith(("--config-path", "resume=")) and a != "resume=auto" for a in argv)
    if argv[0] in TRAINING and not saved and not any(a.startswith(("debug=", "--cfg", "--help")) for a in argv):
        return [*argv, "debug=limit"]
    return argv


def needs_processes(command: str) -> bool:
    return (
        command.startswith("python ")
        or "launcher=" in command
        or "accelerator=ddp" in command
        or re.search(r"trainer\.devices=[2-9]", command) is not None
    )


def newest_run(cwd: Path, rank: int = 0) -> str:
    """The newest run with a best checkpoint (rank=1: the one before it)."""
    runs = [p for p in (cwd / "outputs" / "train").iterdir() if (p / "checkpoints" / "best.ckpt").is_file()]
    return str(sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)[rank].relative_to(cwd))


def write_named_files(cwd: Path) -> None:
    """Text classification files the README's text examples name: real sentences (this test's
    own docstrings and Python's), labelled by where they come from; a Brown corpus in npm's layout
    at package/ and its plain text at brown_text/ (what scripts/brown_text.py writes)."""
    import csv

    from bigmodel_cli.data.text_sources import BROWN_GENRES
    from tests.support.data_files import write_brown
    from tests.support.scripts import load_script

    write_brown(cwd / "package", files=[(f"c{letter}01", 20) for letter in BROWN_GENRES])  # all 15 genres
    load_script("brown_text").convert(str(cwd / "package"), str(cwd / "brown_text"))

    ours = [s.strip() for s in __doc__.replace("\n", " ").split(".") if len(s.split()) > 3]
    theirs = [s.strip() for s in (subprocess.__doc__ or "").replace("\n", " ").split(".") if len(s.split()) > 3]
    rows = [(text, "readme") for text in ours] + [(text, "python") for text in theirs]
    rows = (rows * (60 // len(rows) + 1))[:120]
    for name, delimiter in (("reviews.csv", ","), ("r.tsv", "\t")):
        with open(cwd / name, "w", newline="") as f:
            writer = csv.writer(f, delimiter=delimiter)
            writer.writerow(["text", "label"])
            writer.writerows(rows)


COMMANDS = readme_commands()


def test_readme_has_commands():
    assert len(COMMANDS) > 20 and any(c.startswith("bigmodel train") for c, _ in COMMANDS)


@pytest.mark.slow
def test_every_readme_command_runs(cli, in_tmp_cwd, monkeypatch):
    write_named_files(in_tmp_cwd)
    write_readme_files(in_tmp_cwd)  # my_pkg/ and my_conf/ of "Your own code"
    monkeypatch.syspath_prepend(str(in_tmp_cwd))  # export PYTHONPATH=$PWD, in-process
    path = os.pathsep.join(p for p in (str(in_tmp_cwd), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
    bigmodel = str(Path(sys.executable).with_name("bigmodel"))
    failures, skipped = [], []
    for command, expected in COMMANDS:
        reason = skip_reason(command)
        if reason:
            skipped.append(f"{command}  ({reason})")
            continue
        if OTHER_PLACEHOLDER.search(command):
            command = OTHER_PLACEHOLDER.sub(newest_run(in_tmp_cwd, rank=1), command)
        if PLACEHOLDER.search(command):
            command = PLACEHOLDER.sub(newest_run(in_tmp_cwd), command)
        argv = shlex.split(command)
        if argv[0] == "python":
            argv = [sys.executable, *argv[1:3], *as_run(argv[3:])]
        else:
            argv = [bigmodel, *as_run(argv[1:])]
        if needs_processes(command):
            result = subprocess.run(argv, cwd=in_tmp_cwd, env=env, capture_output=True, text=True, timeout=600)
            code, err = result.returncode, result.stdout[-1500:] + result.stderr[-1500:]
        else:
            code, _, err = cli(*argv[1:])
        if code != expected:
            failures.append(f"{command}\n  -> exit {code}, README says {expected}\n  {err[-1500:]}")
    print("skipped README lines:\n  " + "\n  ".join(skipped))
    assert not failures, "README commands that do not run as shown:\n" + "\n".join(failures)
