"""What does pruning save? The same Optuna search (same seed, space and n_trials) with each pruner,
through the installed `bigmodel train -m hparams_search=optuna`, on the digits CNN:

    python scripts/sweep_bench.py [--trials 20] [--epochs 10] [--pruners none,median,hyperband] \
        [--out-dir outputs/sweep_bench] [overrides ...]      # e.g. data=fashion_mnist data.train_fraction=0.25

Prints a markdown table per pruner: wall time of the whole sweep, trials complete / pruned, epochs
trained in all, and the best trial's objective (val/acc) and test accuracy.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from pathlib import Path

BIGMODEL = shutil.which("bigmodel") or "bigmodel"


def sweep(pruner: str, trials: int, epochs: int, cwd: Path, overrides: list[str]) -> dict:
    name = f"pruner_{pruner}"
    shutil.rmtree(cwd / "multirun" / "train" / name, ignore_errors=True)
    start = time.perf_counter()
    args = [
        BIGMODEL, "train", "-m", "hparams_search=optuna", f"run_name={name}", f"hydra.sweeper.n_trials={trials}",
        f"trainer.max_epochs={epochs}", f"hparams_search.pruner={pruner}", "callbacks.progress_bar=null", *overrides,
    ]  # fmt: skip
    subprocess.run(args, cwd=cwd, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    records = [json.loads(p.read_text()) for p in (cwd / "multirun" / "train" / name).glob("*/run.json")]
    complete = [r for r in records if r["status"] == "completed"]
    best = max(complete, key=lambda r: r["metrics"]["val/acc_best"])
    return {
        "pruner": pruner,
        "seconds": seconds,
        "complete": len(complete),
        "pruned": sum(r["status"] == "pruned" for r in records),
        "epochs": sum(r.get("pruned_after_epoch", epochs - 1) + 1 for r in records),
        "best val/acc": best["metrics"]["val/acc_best"],
        "its test/acc": best["metrics"]["test/acc"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--pruners", default="none,median,hyperband")
    parser.add_argument("--out-dir", type=Path, default=Path("outputs/sweep_bench"))
    parser.add_argument("overrides", nargs="*", help="more overrides for every trial (the data, the model)")
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    rows = [sweep(p, args.trials, args.epochs, args.out_dir, args.overrides) for p in args.pruners.split(",")]
    print(
        f"{args.trials} trials x up to {args.epochs} epochs, {' '.join(args.overrides) or 'digits CNN'}, seed 12345\n"
    )
    print("| pruner | wall s | complete | pruned | epochs trained | best val/acc | its test/acc |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['pruner']} | {r['seconds']:.0f} | {r['complete']} | {r['pruned']} | {r['epochs']} | "
            f"{r['best val/acc']:.4f} | {r['its test/acc']:.4f} |"
        )


if __name__ == "__main__":
    main()
