"""Does distillation help? A small MLP student trained on the digits with a CNN teacher
(distill.teacher=<run>, T=4, alpha=0.9) vs the same student alone, the same budget (epochs, data,
optimizer), mean and spread of several seeds. Every run is the installed `bigmodel train`.

    python scripts/distill_bench.py [--seeds 3] [--epochs 5] [--hidden 32] [--out-dir outputs/distill_bench]

Prints a markdown table: test accuracy and loss of each arm, and the teacher's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import time
from pathlib import Path

BIGMODEL = shutil.which("bigmodel") or "bigmodel"


def train(args: list[str], cwd: Path, name: str) -> dict:
    start = time.perf_counter()
    subprocess.run([BIGMODEL, "train", *args, f"run_name={name}"], cwd=cwd, check=True, capture_output=True)
    metrics = json.loads((cwd / "outputs" / "train" / name / "metrics.json").read_text())
    metrics["seconds"] = time.perf_counter() - start
    return metrics


def summary(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {spread:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=32, help="the student MLP's hidden width")
    parser.add_argument("--teacher-epochs", type=int, default=15)
    parser.add_argument("--out-dir", type=Path, default=Path("outputs/distill_bench"))
    args = parser.parse_args()
    cwd = args.out_dir.resolve()
    if cwd.exists():
        shutil.rmtree(cwd)
    cwd.mkdir(parents=True)
    teacher = train([f"trainer.max_epochs={args.teacher_epochs}"], cwd, "teacher")
    teacher_dir = cwd / "outputs" / "train" / "teacher"
    student = ["model=mlp", f"model.hidden=[{args.hidden}]", f"trainer.max_epochs={args.epochs}"]
    arms = {"student alone": [], "student + distillation (T=4, alpha=0.9)": [f"distill.teacher={teacher_dir}"]}
    results: dict[str, list[dict]] = {arm: [] for arm in arms}
    for seed in range(1, args.seeds + 1):
        for index, (arm, extra) in enumerate(arms.items()):
            results[arm].append(train([*student, *extra, f"seed={seed}"], cwd, f"arm{index}_seed{seed}"))
    print(
        f"| run ({args.seeds} seeds, {args.epochs} epochs, MLP hidden {args.hidden}) | test/acc | test/loss | s/run |"
    )
    print("|---|---|---|---|")
    print(
        f"| teacher: default CNN, {args.teacher_epochs} epochs | {teacher['test/acc']:.4f} | {teacher['test/loss']:.4f} | {teacher['seconds']:.1f} |"
    )
    for arm, runs in results.items():
        accs, losses = [r["test/acc"] for r in runs], [r["test/loss"] for r in runs]
        seconds = statistics.mean(r["seconds"] for r in runs)
        print(f"| {arm} | {summary(accs)} | {summary(losses)} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
