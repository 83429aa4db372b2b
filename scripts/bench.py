"""`bigmodel` against a plain PyTorch loop, measured side by side in one run: start-up, per-epoch
training time, time to accuracy, peak memory.

    python scripts/bench.py [--quick] [--repeats 3] [--threads N] [--device cpu|cuda] [--out-dir DIR]
    python scripts/bench.py --sections compile [--repeats 1] [--compile-steps 30]
    python scripts/bench.py --sections large [--repeats 1] [--large-steps 4]

Prints a table and writes it to <out-dir>/bench.json and <out-dir>/bench.md (default
outputs/bench). Every measurement is a whole process (its peak resident memory is the process's
max RSS); each is repeated and the median reported.

1. start-up: `bigmodel --help`, `bigmodel train --cfg job`, `bigmodel train debug=fdr`, wall time.
2. per epoch: `bigmodel train` (defaults, and callbacks=minimal logger=none) vs scripts/plain_loop.py
   for an MLP and a small CNN: the same data tensors, model class, optimizer, batch size, steps,
   validation batches and threads. Epoch times are taken inside the training process
   (bigmodel_cli.callbacks.timing.EpochTimer; the plain loop times itself), so start-up is excluded; the
   first epoch of each process is a warm-up and is left out.
3. time to accuracy: `bigmodel train experiment=fashion_mnist_fast` (for 92%) and
   `experiment=fashion_mnist_92` (for 92%) end to end, start-up included, and the test accuracy
   each reaches.
4. gpu (--device cuda only): images/s and peak GPU memory of resnet and transformer in bf16.
5. compile (only when asked: --sections compile): `bigmodel train compile=true` against eager per
   model family at small sizes (digits; gpt on char_lm): steady training steps/s (5 epochs, the
   first two, which compile, left out) and the seconds compiling costs (the compiled process's extra wall
   time, less what its faster steps saved).
6. large models (only when asked: --sections large): GPT-2 small's shape and resnet50 through
   `bigmodel train` against scripts/plain_loop.py (seconds per optimizer step, peak RSS), then
   model.activation_checkpointing=true, trainer.precision=bf16-true and half the batch with
   trainer.accumulate_grad_batches=2, each against bigmodel without it.

Start-up rows compare `bigmodel train debug=fdr` with `python -c "import torch, pytorch_lightning"`,
and per-epoch rows add a bare-Lightning floor (scripts/plain_loop.py --lightning), so what is
bigmodel's own shows apart from what Lightning costs.

Fashion-MNIST is used where it is installed (/usr/share/datasets/fashion-mnist), else
data=synthetic of the same shape. --quick uses tiny synthetic data, few steps and one repeat: it
proves the benchmark works (CI), its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
# Per-epoch cases: the model option and its overrides (the CNN is the default model's shape).
MODELS = {"mlp": ["model=mlp"], "cnn": ["model=cnn"]}
PRESETS = {"defaults": [], "minimal": ["callbacks=minimal", "logger=none"]}
# The import floor with bigmodel's exit step (bigmodel_cli/cli/exit.py), which spares Python's
# teardown its collector passes over torch's objects: the like-for-like floor for debug=fdr.
EXIT_FLOOR = (
    "from bigmodel_cli.cli.exit import collect_once_at_exit; collect_once_at_exit(); import torch, pytorch_lightning"
)
# Seconds (start-up), or debug=fdr's ratio to the import floor.
TARGETS = {"--help": 0.5, "--cfg job": 1.5, "debug=fdr": 1.1}
# Per step: bigmodel's training steps against bare Lightning's, each preset (issue 29, row 2).
PER_STEP_TARGET = 1.05
# debug=fdr against lightning-hydra-template's debug=fdr (--peer): at most this ratio.
PEER_TARGET = 0.9
# compile=true against eager: model family -> its overrides (small sizes; gpt reads bytes).
COMPILE_MODELS = {
    "mlp": ["model=mlp"],
    "cnn": ["model=cnn"],
    "resnet": ["model=resnet"],
    "transformer": ["model=transformer"],
    "gpt": ["model=gpt", "data=char_lm", "data.block_size=64"],
}
# Time to accuracy: recipe -> the test accuracy it is for.
RECIPES = {"fashion_mnist_fast": 0.92, "fashion_mnist_92": 0.92}


def bigmodel() -> list[str]:
    """The console script next to this interpreter, else `python -m bigmodel_cli`."""
    script = shutil.which("bigmodel", path=str(Path(sys.executable).parent)) or shutil.which("bigmodel")
    return [script] if script else [sys.executable, "-m", "bigmodel_cli"]


def run_process(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> dict:
    """Runs cmd to completion: wall seconds, peak RSS (MiB) of that process, its output's tail."""
    log = cwd / f"log-{time.monotonic_ns()}.txt"
    with open(log, "wb") as out:
        start = time.perf_counter()
        process = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.005)
        wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text(errors="replace")
    print(f"  {wall:7.2f} s  {' '.join(cmd[-3:])[:100]}", file=sys.stderr, flush=True)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({process.returncode}):\n{text[-3000:]}")
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    rss = usage.ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)
    return {"wall": wall, "rss_mb": rss, "output": text}


def data_overrides(quick: bool) -> tuple[list[str], str]:
    if quick:
        return ["data=synthetic", "data.source.train_samples=512", "data.source.test_samples=128"], "synthetic (quick)"
    if FASHION_DIR.is_dir():
        return ["data=fashion_mnist"], "Fashion-MNIST"
    return (
        ["data=synthetic", "data.source.train_samples=60000", "data.source.test_samples=10000"],
        "synthetic 28x28 (Fashion-MNIST not installed)",
    )


def device_overrides(device: str) -> list[str]:
    return ["accelerator=gpu"] if device == "cuda" else ["accelerator=cpu"]


def epoch_times(record: Path) -> dict:
    """A timed process's median epoch, and the median of its epochs' training steps alone."""
    timed = json.loads(record.read_text())
    return {"epoch": median_epoch(timed["epoch_seconds"]), "steps": median_epoch(timed["step_seconds"])}


def median_epoch(seconds: list[float]) -> float:
    """Median epoch time, the first (warm-up) epoch left out when there are others."""
    return statistics.median(seconds[1:] if len(seconds) > 1 else seconds)


def row(section: str, case: str, runs: list[dict], value_key: str, unit: str, **extra) -> dict:
    return {
        "section": section,
        "case": case,
        "value": statistics.median(r[value_key] for r in runs),
        "unit": unit,
        "runs": [round(r[value_key], 4) for r in runs],
        "peak_rss_mb": max(r["rss_mb"] for r in runs),
        **extra,
    }


def startup_installs(work: Path) -> dict[str, tuple[str, list[str]]]:
    """The installs start-up is timed in: name -> (python, bigmodel command). This interpreter's (in
    CI `.[dev]`: every extra, so scipy, matplotlib and scikit-learn), and the base install: a venv of
    the same packages minus those three (scripts/base_install.py), what `pip install bigmodel-cli`
    puts on the start-up path."""
    sys.path.insert(0, str(HERE))
    from base_install import make_base_venv

    base = make_base_venv(work / "base-venv")
    return {
        "this install": (sys.executable, bigmodel()),
        "base install": (str(base), [str(base.parent / "bigmodel")]),
    }


def scipy_on_path(python: str) -> bool:
    """Whether scipy is importable by this interpreter: torchmetrics imports scipy.signal (and
    matplotlib.pyplot) at start-up where it is, about 1 s."""
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('scipy') is None)"
    return subprocess.run([python, "-c", probe], timeout=60).returncode == 0


def peer_cases(args) -> dict[str, tuple[list[str], Path, bool]]:
    """lightning-hydra-template's `python src/train.py debug=fdr` (--peer DIR) in each environment
    --peer-python names (default: this one): case name -> (command, cwd, scipy on its path)."""
    if not args.peer:
        return {}
    cases = {}
    for python in args.peer_python or [sys.executable]:
        scipy = scipy_on_path(python)
        name = f"lightning-hydra-template: python src/train.py debug=fdr (the peer, {'with' if scipy else 'no'} scipy)"
        cases[name] = ([python, "src/train.py", "debug=fdr"], Path(args.peer).resolve(), scipy)
    return cases


def like_for_like(peers: dict[str, tuple], python: str) -> str | None:
    """The peer whose environment has scipy where this install has it, else the first."""
    if not peers:
        return None
    scipy = scipy_on_path(python)
    return next((name for name, (*_, has) in peers.items() if has == scipy), next(iter(peers)))


def bench_startup(args, work: Path, env: dict) -> list[dict]:
    """Whole processes. debug=fdr (one train, val and test batch, every default on) is set against
    the floor no Lightning program can go below, importing torch and pytorch_lightning, in the same
    install: this one and the base install (no scipy, matplotlib or scikit-learn for torchmetrics to
    import). With --peer, lightning-hydra-template's own debug=fdr runs in the same rounds."""
    installs = startup_installs(work)
    # name -> (command, cwd, target: seconds or, for debug=fdr, a ratio to its floor, floor names)
    cases = {}
    for install, (python, command) in installs.items():
        floors = (
            f"{install}: python -c 'import torch, pytorch_lightning' (the floor)",
            f"{install}: the floor, exiting as bigmodel does",
        )
        cases[floors[0]] = ([python, "-c", "import torch, pytorch_lightning"], work, None, None)
        cases[floors[1]] = ([python, "-c", EXIT_FLOOR], work, None, None)
        if install == "this install":
            cases["bigmodel --help"] = ([*command, "--help"], work, TARGETS["--help"], None)
            cases["bigmodel train --cfg job"] = ([*command, "train", "--cfg", "job"], work, TARGETS["--cfg job"], None)
        cases[f"{install}: bigmodel train debug=fdr"] = (
            [*command, "train", "debug=fdr", *device_overrides(args.device)],
            work,
            TARGETS["debug=fdr"],
            floors,
        )
    peers = peer_cases(args)
    cases |= {name: (cmd, cwd, None, None) for name, (cmd, cwd, _) in peers.items()}
    peer_of = {
        f"{install}: bigmodel train debug=fdr": like_for_like(peers, python)
        for install, (python, _) in installs.items()
    }
    runs: dict[str, list[dict]] = {name: [] for name in cases}
    for _ in range(args.repeats):  # interleaved, so load changes hit every case alike
        for name, (cmd, cwd, _, _) in cases.items():
            runs[name].append(run_process(cmd, cwd, env, args.timeout))
    median = {name: statistics.median(r["wall"] for r in runs[name]) for name in cases}
    rows = []
    for name, (_, _, target, floors) in cases.items():
        vs = ("vs_floor", "vs_exit_floor")
        extra = {key: median[name] / median[floor] for key, floor in zip(vs, floors)} if floors else {}
        measured = extra.get("vs_floor", median[name])
        met = None if target is None else measured <= target
        if peer_of.get(name):
            extra |= {
                "vs_peer": median[name] / median[peer_of[name]],
                "peer": peer_of[name],
                "peer_target": PEER_TARGET,
            }
            met = met and extra["vs_peer"] <= PEER_TARGET
        rows.append(row("start-up", name, runs[name], "wall", "s", target=target, met=met, **extra))
    return rows


def epoch_settings(args) -> dict:
    if args.quick:
        return {"epochs": 2, "steps": {"mlp": 4, "cnn": 4}, "val_steps": 2}
    return {"epochs": args.epochs, "steps": {"mlp": args.mlp_steps, "cnn": args.cnn_steps}, "val_steps": args.val_steps}


def epoch_timer(path: Path) -> list[str]:
    """Overrides that add bigmodel's EpochTimer to a run, writing its record to path."""
    return [
        "+callbacks.epoch_timer._target_=bigmodel_cli.callbacks.timing.EpochTimer",
        f"+callbacks.epoch_timer.path={path}",
    ]


def bigmodel_epochs(
    args,
    work: Path,
    env: dict,
    common: list[str],
    settings: dict,
    model: str,
    preset: str,
    repeat: int,
    model_overrides: list[str] | None = None,
) -> dict:
    """`bigmodel train` of MODELS[model] (or model_overrides) with a preset; its median epoch."""
    timer = work / f"epochs-{model}-{preset}-{repeat}.json"
    steps = settings["steps"][model]
    overrides = [
        *common,
        *(MODELS[model] if model_overrides is None else model_overrides),
        *PRESETS.get(preset, []),
        f"trainer.max_epochs={settings['epochs']}",
        f"trainer.limit_train_batches={steps if steps else 'null'}",
        f"trainer.limit_val_batches={settings['val_steps'] or 'null'}",
        "test_after_fit=false",
        f"run_name=bench-{model}-{preset}-{repeat}",
        *epoch_timer(timer),
    ]
    result = run_process([*bigmodel(), "train", *overrides], work, env, args.timeout)
    return result | epoch_times(timer)


def plain_epochs(
    args,
    work: Path,
    env: dict,
    common: list[str],
    settings: dict,
    model: str,
    repeat: int,
    lightning: bool = False,
    model_overrides: list[str] | None = None,
) -> dict:
    """The plain PyTorch loop, or (lightning) the same work through a bare LightningModule and Trainer."""
    out = work / f"{'lightning' if lightning else 'plain'}-{model}-{repeat}.json"
    steps, val_steps = settings["steps"][model], settings["val_steps"]
    cmd = [
        sys.executable,
        str(HERE / "plain_loop.py"),
        "--out",
        str(out),
        "--epochs",
        str(settings["epochs"]),
        "--threads",
        str(args.threads),
        "--device",
        args.device,
        *(["--steps", str(steps)] if steps else []),
        *(["--val-steps", str(val_steps)] if val_steps else []),
        *(["--lightning"] if lightning else []),
        "--",
        *common,
        *(MODELS[model] if model_overrides is None else model_overrides),
    ]
    result = run_process(cmd, work, env, args.timeout)
    return result | epoch_times(out)


def bench_epochs(args, work: Path, env: dict, data: list[str]) -> list[dict]:
    settings = epoch_settings(args)
    # Like with like: no lr schedule in either (stepping one is noise), the same seed and device.
    common = [*data, "scheduler=none", *device_overrides(args.device)]
    rows = []
    for model in args.models.split(","):
        runs: dict[str, list[dict]] = {"plain": [], "lightning": [], **{preset: [] for preset in PRESETS}}
        for repeat in range(args.repeats):  # interleaved, so load changes hit every case alike
            runs["plain"].append(plain_epochs(args, work, env, common, settings, model, repeat))
            runs["lightning"].append(plain_epochs(args, work, env, common, settings, model, repeat, lightning=True))
            for preset in PRESETS:
                runs[preset].append(bigmodel_epochs(args, work, env, common, settings, model, preset, repeat))
        plain = statistics.median(r["epoch"] for r in runs["plain"])
        steps = settings["steps"][model] or "all"
        rows.append(
            row("per epoch", f"{model}: plain PyTorch loop", runs["plain"], "epoch", "s", steps=steps, ratio=1.0)
        )
        floor = statistics.median(r["epoch"] for r in runs["lightning"])
        rows.append(
            row(
                "per epoch",
                f"{model}: bare Lightning (the floor)",
                runs["lightning"],
                "epoch",
                "s",
                steps=steps,
                ratio=floor / plain,
            )
        )
        floor_steps = statistics.median(r["steps"] for r in runs["lightning"])
        for preset in PRESETS:
            epoch = statistics.median(r["epoch"] for r in runs[preset])
            # The row is judged per step (an epoch's training steps alone); the whole epoch, which
            # also validates and writes bigmodel's checkpoints and logs, is shown beside it.
            per_step = statistics.median(r["steps"] for r in runs[preset]) / floor_steps
            rows.append(
                row(
                    "per epoch",
                    f"{model}: bigmodel train ({preset})",
                    runs[preset],
                    "epoch",
                    "s",
                    steps=steps,
                    ratio=epoch / plain,
                    vs_floor=epoch / floor,
                    steps_vs_floor=per_step,
                    target=PER_STEP_TARGET,
                    met=per_step <= PER_STEP_TARGET,
                )
            )
    return rows


# Large models: GPT-2 small's shape (12 blocks of 768, 12 heads; a byte vocabulary, so 85 M
# parameters, not 124 M) and torchvision's resnet50, bigmodel against the plain loop at the same
# batch, precision and steps; then bigmodel's memory levers, each against bigmodel without it.
LARGE = {
    "gpt 12x768": ["model=gpt", "model.dim=768", "model.depth=12", "model.heads=12", "data=char_lm",
                   "data.block_size=256", "data.batch_size=8"],
    "resnet50": ["model=resnet", "model.arch=resnet50", "data=synthetic", "data.image_size=32", "data.in_channels=3",
                 "data.mean=[0.5,0.5,0.5]", "data.std=[0.25,0.25,0.25]", "data.batch_size=32"],
}  # fmt: skip
QUICK_LARGE = {
    "gpt 12x768": ["model.dim=64", "model.depth=2", "model.heads=2", "data.block_size=32"],
    "resnet50": ["model.arch=resnet18", "data.source.train_samples=256", "data.source.test_samples=64"],
}
LEVERS = {
    "activation checkpointing": ["model.activation_checkpointing=true"],
    "bf16-true": ["trainer.precision=bf16-true"],
    "half batch x accumulate 2": ["trainer.accumulate_grad_batches=2"],
}
LARGE_TARGETS = {"time": 1.05, "memory": 1.1}  # bigmodel / plain loop


def bench_large(args, work: Path, env: dict) -> list[dict]:
    """Seconds per optimizer step (an epoch's training steps, without its validation and checkpoint
    writes, / steps; median over epochs, the first a warm-up) and each process's peak RSS (imports
    included, as a user's process has them)."""
    steps = 2 if args.quick else args.large_steps
    rows = []
    for family, (name, overrides) in enumerate(LARGE.items()):
        overrides = [*overrides, *(QUICK_LARGE[name] if args.quick else []), "scheduler=none",
                     *device_overrides(args.device)]  # fmt: skip
        batch = int(next(o for o in reversed(overrides) if o.startswith("data.batch_size=")).split("=")[1])
        cases = {"plain loop": None, "bigmodel": [], **LEVERS}
        runs: dict[str, list[dict]] = {case: [] for case in cases}
        for repeat in range(args.repeats):  # interleaved, so load changes hit every case alike
            for number, (case, extra) in enumerate(cases.items()):
                halved = case.startswith("half batch")
                key = f"large{family}-{number}"
                settings = {"epochs": 2, "steps": {key: steps * (2 if halved else 1)}, "val_steps": 1}
                chosen = [*overrides, *(extra or []), *([f"data.batch_size={batch // 2}"] if halved else [])]
                if extra is None:
                    result = plain_epochs(args, work, env, [], settings, key, repeat, model_overrides=chosen)
                else:
                    result = bigmodel_epochs(args, work, env, [], settings, key, "", repeat, model_overrides=chosen)
                result["step"] = result["steps"] / steps
                runs[case].append(result)
        seconds = {case: statistics.median(r["step"] for r in found) for case, found in runs.items()}
        memory = {case: max(r["rss_mb"] for r in found) for case, found in runs.items()}
        for case in cases:
            extra = {}
            if case != "plain loop":
                reference = "plain loop" if case == "bigmodel" else "bigmodel"
                extra = {
                    "against": reference,
                    "time_ratio": seconds[case] / seconds[reference],
                    "memory_ratio": memory[case] / memory[reference],
                }
            if case == "bigmodel":
                extra["met"] = (
                    extra["time_ratio"] <= LARGE_TARGETS["time"] and extra["memory_ratio"] <= LARGE_TARGETS["memory"]
                )
                extra["target"] = LARGE_TARGETS
            rows.append(row("large models", f"{name}: {case}", runs[case], "step", "s/step", steps=steps, **extra))
    return rows


def bench_time_to_accuracy(args, work: Path, env: dict, data: list[str]) -> list[dict]:
    rows = []
    for recipe, accuracy in RECIPES.items():
        overrides = [f"experiment={recipe}", *device_overrides(args.device)]
        if args.quick:
            overrides += [*data, "trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=2"]
        elif data[0] != "data=fashion_mnist":
            overrides += data
        runs = []
        for repeat in range(args.tta_repeats):
            name = f"bench-{recipe}-{repeat}"
            result = run_process([*bigmodel(), "train", *overrides, f"run_name={name}"], work, env, args.timeout)
            metrics = json.loads((work / "outputs" / "train" / name / "metrics.json").read_text())
            result["test_acc"] = float(metrics["test/acc"])
            runs.append(result)
        acc = statistics.median(r["test_acc"] for r in runs)
        rows.append(
            row(
                "time to accuracy",
                f"bigmodel train experiment={recipe}",
                runs,
                "wall",
                "s",
                test_acc=round(acc, 4),
                target=accuracy,
                met=acc >= accuracy,
            )
        )
    return rows


def bench_gpu(args, work: Path, env: dict, data: list[str]) -> list[dict]:
    """--device cuda: training throughput (images/s, warm-up epoch left out) and peak GPU memory of
    larger models in bf16, with every bigmodel default but the progress bar and logger."""
    batch, steps = 256, (4 if args.quick else 200)
    rows = []
    for model in ("resnet", "transformer"):
        runs = []
        for repeat in range(args.repeats):
            timer = work / f"gpu-{model}-{repeat}.json"
            overrides = [
                *data, f"model={model}", "accelerator=gpu", "trainer.precision=bf16-mixed", f"data.batch_size={batch}",
                "trainer.max_epochs=3", f"trainer.limit_train_batches={steps}", "trainer.limit_val_batches=2",
                "test_after_fit=false", "callbacks.progress_bar=null", "logger=none", f"run_name=gpu-{model}-{repeat}",
                *epoch_timer(timer),
            ]  # fmt: skip
            result = run_process([*bigmodel(), "train", *overrides], work, env, args.timeout)
            record = json.loads(timer.read_text())
            result["throughput"] = record["steps_per_epoch"] * batch / median_epoch(record["step_seconds"])
            result["peak_gpu_mib"] = record.get("peak_gpu_mib", 0.0)
            runs.append(result)
        rows.append(
            row(
                "gpu (bf16)",
                f"{model}: images/s, batch {batch}",
                runs,
                "throughput",
                "img/s",
                steps=steps,
                peak_gpu_mib=max(r["peak_gpu_mib"] for r in runs),
            )
        )
    return rows


def bench_compile(args, work: Path, env: dict) -> list[dict]:
    """Eager and compile=true processes of each family, interleaved: steps/s from the last three of
    five epochs (EpochTimer; each epoch holds its steps and 2 validation batches), and compile seconds:
    wall(compiled) - wall(eager) + the time the compiled steps saved over the whole run."""
    epochs, steps = 5, (4 if args.quick else args.compile_steps)
    rows = []
    for model in args.compile_models.split(","):
        runs: dict[str, list[dict]] = {"eager": [], "compiled": []}
        for repeat in range(args.repeats):
            for case, cases in runs.items():
                timer = work / f"compile-{model}-{case}-{repeat}.json"
                overrides = [
                    *COMPILE_MODELS[model], *device_overrides(args.device), "scheduler=none", "callbacks=minimal",
                    "logger=none", f"trainer.max_epochs={epochs}", f"trainer.limit_train_batches={steps}",
                    "trainer.limit_val_batches=2", "test_after_fit=false", f"compile={str(case == 'compiled').lower()}",
                    f"run_name=compile-{model}-{case}-{repeat}", *epoch_timer(timer),
                ]  # fmt: skip
                result = run_process([*bigmodel(), "train", *overrides], work, env, args.timeout)
                record = json.loads(timer.read_text())
                # The first two epochs left out: they compile (training, then eval, then each new batch size).
                result["steps_per_s"] = record["steps_per_epoch"] / statistics.median(record["epoch_seconds"][2:])
                cases.append(result)
        eager = statistics.median(r["steps_per_s"] for r in runs["eager"])
        compiled = statistics.median(r["steps_per_s"] for r in runs["compiled"])
        compile_s = statistics.median(
            c["wall"] - e["wall"] + epochs * steps * (1 / e["steps_per_s"] - 1 / c["steps_per_s"])
            for e, c in zip(runs["eager"], runs["compiled"])
        )
        rows.append(row("compile", f"{model}: eager", runs["eager"], "steps_per_s", "steps/s", steps=steps))
        rows.append(
            row(
                "compile",
                f"{model}: compile=true",
                runs["compiled"],
                "steps_per_s",
                "steps/s",
                steps=steps,
                vs_eager=compiled / eager,
                compile_s=compile_s,
            )
        )
    return rows


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def markdown(rows: list[dict], machine: dict) -> str:
    lines = [
        f"bigmodel benchmark: {machine['data']}, {machine['device']}, threads={machine['threads']}, "
        f"{machine['cpus']} CPUs, load average {machine['load_before']} -> {machine['load_after']}"
        f"{' (QUICK: tiny sizes, numbers meaningless)' if machine['quick'] else ''}",
        "",
        "| section | case | median | runs | vs plain | vs floor | vs peer | target | met | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = f"{r['ratio']:.3f}x" if "ratio" in r else ""
        vs_floor = f"{r['vs_floor']:.3f}x" if "vs_floor" in r else ""
        vs_peer = f"{r['vs_peer']:.3f}x" if "vs_peer" in r else ""
        value = f"{r['value']:.3f} {r['unit']}"
        if "steps" in r:
            value += f" ({r['steps']} steps)"
        if "test_acc" in r:
            value += f", test acc {r['test_acc']:.4f}"
        if "vs_eager" in r:
            value += f", {r['vs_eager']:.2f}x eager, compiling {r['compile_s']:.1f} s"
        if "time_ratio" in r:
            value += f"; vs {r['against']}: {r['time_ratio']:.2f}x time, {r['memory_ratio']:.2f}x peak RSS"
        if "peak_gpu_mib" in r:
            value += f", peak GPU {r['peak_gpu_mib']:.0f} MiB"
        if "peer" in r:
            value += f"; set against {r['peer'].partition('(')[2].rstrip(')')}"
        if "vs_exit_floor" in r:
            value += f"; {r['vs_exit_floor']:.3f}x the floor exiting as bigmodel does"
        if "steps_vs_floor" in r:
            value += f"; training steps alone: {r['steps_vs_floor']:.3f}x bare Lightning's"
        target = r.get("target")
        if target is None:
            target_text = ""
        elif "test_acc" in r:
            target_text = f">= {target:.0%} acc"
        elif isinstance(target, dict):
            target_text = f"<= {target['time']}x time, <= {target['memory']}x memory"
        elif "steps_vs_floor" in r:
            target_text = f"<= {target}x bare Lightning per step"
        elif "ratio" in r:
            target_text = f"<= {target}x plain"
        elif "vs_floor" in r:
            target_text = f"<= {target}x floor" + (f", <= {r['peer_target']}x peer" if "vs_peer" in r else "")
        else:
            target_text = f"<= {target} s"
        met = {True: "yes", False: "NO", None: ""}[r.get("met")]
        lines.append(
            f"| {r['section']} | {r['case']} | {value} | {len(r['runs'])} | {ratio} | {vs_floor} | {vs_peer} | {target_text} | "
            f"{met} | {r['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="bigmodel vs a plain PyTorch loop: start-up, per-epoch time, time to accuracy, peak memory"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: proves it works (CI)")
    parser.add_argument("--repeats", type=int, default=None, help="runs per case (default 3, --quick 1)")
    parser.add_argument("--tta-repeats", type=int, default=1, help="runs of the time-to-accuracy recipe")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per training process (first is warm-up)")
    parser.add_argument("--mlp-steps", type=int, default=0, help="MLP training batches per epoch (0: all)")
    parser.add_argument("--cnn-steps", type=int, default=100, help="CNN training batches per epoch (0: all)")
    parser.add_argument("--val-steps", type=int, default=10, help="validation batches per epoch (0: all)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads in every process")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated per-epoch models")
    parser.add_argument(
        "--sections",
        default="startup,epochs,accuracy,gpu",
        help="comma-separated subset to run (gpu: --device cuda; compile and large: only when named)",
    )
    parser.add_argument(
        "--peer", default=None, help="a lightning-hydra-template checkout: its debug=fdr joins the start-up rows"
    )
    parser.add_argument(
        "--peer-python",
        action="append",
        help="an environment's python to run the peer in (default: this one); give one without scipy and one "
        "with, and each install is set against the peer whose environment matches it",
    )
    parser.add_argument("--compile-steps", type=int, default=30, help="training batches per epoch, compile section")
    parser.add_argument("--compile-models", default=",".join(COMPILE_MODELS), help="families for --sections compile")
    parser.add_argument("--large-steps", type=int, default=4, help="optimizer steps per epoch, large-models section")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per process")
    parser.add_argument("--out-dir", default="outputs/bench")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (1 if args.quick else 3)
    out_dir = Path(args.out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(args.threads),
        "MKL_NUM_THREADS": str(args.threads),
        "PYTHONUNBUFFERED": "1",
    }
    data, data_name = data_overrides(args.quick)
    machine = {
        "data": data_name,
        "device": args.device,
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "quick": args.quick,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "repeats": args.repeats,
        "load_before": load_average(),
    }
    sections = set(args.sections.split(","))
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bigmodel-bench-") as tmp:
        work = Path(tmp)
        if "startup" in sections:
            rows += bench_startup(args, work, env)
        if "epochs" in sections:
            rows += bench_epochs(args, work, env, data)
        if "accuracy" in sections:
            rows += bench_time_to_accuracy(args, work, env, data)
        if "gpu" in sections and args.device == "cuda":
            rows += bench_gpu(args, work, env, data)
        if "compile" in sections:
            rows += bench_compile(args, work, env)
        if "large" in sections:
            rows += bench_large(args, work, env)
    machine["load_after"] = load_average()
    table = markdown(rows, machine)
    (out_dir / "bench.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    (out_dir / "bench.md").write_text(table)
    print(table)
    print(f"written: {out_dir / 'bench.json'}, {out_dir / 'bench.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
