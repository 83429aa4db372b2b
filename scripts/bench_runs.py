"""How fast the tools that read run directories answer, on many runs: `bigmodel runs` over N run
directories and shell-completion answers, each a whole process, median of repeats.

    python scripts/bench_runs.py [--runs 2000] [--repeats 5]

The run directories are written to a temporary directory, each with a run.json of a real run's
shape (its full resolved config, versions and metrics), as `bigmodel train` writes it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

BIGMODEL = shutil.which("bigmodel") or "bigmodel"


def record(i: int, config: dict) -> dict:
    start = datetime.now() - timedelta(minutes=i)
    return {
        "status": "failed" if i % 10 == 0 else "completed",
        "command": f"bigmodel train optimizer.lr={0.001 * (i % 7 + 1)}",
        "overrides": [f"optimizer.lr={0.001 * (i % 7 + 1)}", f"seed={i}"],
        "task": "train",
        "seed": i,
        "versions": {"torch": "2.14.1", "pytorch-lightning": "2.6.6"},
        "start_time": start.isoformat(),
        "end_time": (start + timedelta(seconds=40)).isoformat(),
        "config": config,
        "metrics": {"val/acc": 0.9 + i % 10 / 100, "val/acc_best": 0.91, "test/acc": 0.93, "test/loss": 0.2},
    }


def write_runs(root: Path, n: int) -> None:
    from bigmodel_cli.config.catalogue import default_choices, option_yaml

    # A config of a real run's size: the default option of every group.
    config = {group: option_yaml(group, option) for group, option in default_choices().items() if option}
    for i in range(n):
        run = root / "outputs" / "train" / f"2026-01-01_00-00-00-{i % 1000:03d}-{i:06x}"
        (run / "checkpoints").mkdir(parents=True)
        (run / "run.json").write_text(json.dumps(record(i, config), indent=2))


def timed(argv: list[str], cwd: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        write_runs(cwd, args.runs)
        cases = {
            "bigmodel --version (process floor)": [BIGMODEL, "--version"],
            f"bigmodel runs ({args.runs} runs, newest 50 shown)": [BIGMODEL, "runs"],
            f"bigmodel runs --limit 0 ({args.runs} runs, all shown)": [BIGMODEL, "runs", "--limit", "0"],
            f"bigmodel runs --json ({args.runs} runs)": [BIGMODEL, "runs", "--json"],
            f"bigmodel runs --status failed -k lr ({args.runs} runs)": [
                BIGMODEL,
                "runs",
                "--status",
                "failed",
                "-k",
                "lr",
            ],
            "completion: bigmodel <TAB>": [BIGMODEL, "completion", "--line", "bigmodel "],
            "completion: model=<TAB>": [BIGMODEL, "completion", "--line", "bigmodel train model="],
            "completion: optimizer.<TAB>": [BIGMODEL, "completion", "--line", "bigmodel train optimizer."],
            "completion: ckpt_path=outputs/train/<TAB>": [
                BIGMODEL,
                "completion",
                "--line",
                "bigmodel test ckpt_path=outputs/train/",
            ],
        }
        print(f"| case | median of {args.repeats} (s) |\n|---|---|")
        for name, argv in cases.items():
            print(f"| {name} | {timed(argv, cwd, args.repeats):.3f} |")


if __name__ == "__main__":
    main()
