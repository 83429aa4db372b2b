"""Does pretraining help? Fine-tuned-from-pretraining vs trained-from-scratch, the same fine-tuning
budget on the same small labeled set, mean of 3 seeds, for the vision pair and the text pair of
recipes (conf/experiment/pretrain_* and finetune_*). Every run is the installed `bigmodel`.

    python scripts/finetune_bench.py [--seeds 3] [--out-dir outputs/finetune_bench] [--quick]

Vision: a CNN pretrained on Fashion-MNIST (experiment=pretrain_fashion_mnist), fine-tuned on 10% of
the digits labels at 28x28 (experiment=finetune_digits: gradual unfreezing), and with every layer
trained (finetune=none); scratch: the same recipe with finetune=none and no init_from. Text: BERT pretrained by masked LM on Python's
standard-library sources (experiment=pretrain_bert), fine-tuned to tell which standard-library
package (email, http, json, xml, ...) a source line comes from, 300 labeled lines
(experiment=finetune_bert); scratch: the same with finetune=none. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import statistics
import subprocess
import sysconfig
import time
from pathlib import Path

BIGMODEL = shutil.which("bigmodel") or "bigmodel"
PACKAGES = ("email", "http", "json", "xml", "urllib", "logging")


def bigmodel(args: list[str], cwd: Path, name: str) -> dict:
    start = time.perf_counter()
    subprocess.run([BIGMODEL, "train", *args, f"run_name={name}"], cwd=cwd, check=True, capture_output=True)
    metrics = json.loads((cwd / "outputs" / "train" / name / "metrics.json").read_text())
    metrics["seconds"] = time.perf_counter() - start
    return metrics


def labeled_lines(path: Path, per_class: int = 100) -> None:
    """Source lines of standard-library packages, labeled by package (the pretraining corpus is the
    top-level modules only, so these lines are unseen text)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    rng = random.Random(0)
    rows = []
    for package in PACKAGES:
        lines = [
            line.strip()
            for f in sorted((stdlib / package).rglob("*.py"))
            for line in f.read_text(encoding="utf-8", errors="replace").splitlines()
            if len(line.split()) >= 4
        ]
        rows += [(line, package) for line in rng.sample(lines, per_class * 2)]  # half train, the rest val/test
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)


def compare(name: str, pretrain: list[str], finetune: list[str], seeds: int, cwd: Path, quick: list[str]) -> list[str]:
    bigmodel([*pretrain, *quick], cwd, f"{name}_pretrain")
    source = str(cwd / "outputs" / "train" / f"{name}_pretrain")
    results = {"fine-tuned": [], "scratch": []}
    for seed in range(seeds):
        results["fine-tuned"].append(
            bigmodel([*finetune, f"init_from={source}", f"seed={seed}", *quick], cwd, f"{name}_ft{seed}")
        )
        results["scratch"].append(
            bigmodel([*finetune, "finetune=none", f"seed={seed}", *quick], cwd, f"{name}_sc{seed}")
        )
    rows = []
    for how, runs in results.items():
        accs = [r["test/acc"] for r in runs]
        spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
        rows.append(
            f"| {name} | {how} | {statistics.mean(accs):.4f} ± {spread:.4f} | {' '.join(f'{a:.3f}' for a in accs)} | {statistics.mean(r['seconds'] for r in runs):.1f} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out-dir", default="outputs/finetune_bench")
    parser.add_argument(
        "--quick", action="store_true", help="a few batches per run: proves it works, numbers mean nothing"
    )
    args = parser.parse_args()
    cwd = Path(args.out_dir).resolve()
    cwd.mkdir(parents=True, exist_ok=True)
    quick = ["debug=limit"] if args.quick else []
    labeled_lines(cwd / "labeled.csv")
    rows = compare(
        "vision", ["experiment=pretrain_fashion_mnist"], ["experiment=finetune_digits"], args.seeds, cwd, quick
    )
    text_finetune = [
        "experiment=finetune_bert",
        f"data.path={cwd / 'labeled.csv'}",
        f"data.num_classes={len(PACKAGES)}",
    ]
    rows += compare("text", ["experiment=pretrain_bert"], text_finetune, args.seeds, cwd, quick)
    table = "\n".join(
        ["| pair | start | test acc (mean ± sd) | per seed | s per run |", "|---|---|---|---|---|", *rows]
    )
    (cwd / "finetune_bench.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
