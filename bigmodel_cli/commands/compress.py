"""bigmodel compress: int8 quantisation (ONNX Runtime, dynamic or statically calibrated) or
magnitude pruning of a checkpoint's model, measured against the original on the run's test split."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from omegaconf import DictConfig

from bigmodel_cli.checkpoints.files import atomic_save, load_checkpoint
from bigmodel_cli.commands.job import prepare, task_main
from bigmodel_cli.deploy.export import EXAMPLE_BATCH, deployable, export, model_name, runner
from bigmodel_cli.deploy.inputs import held_out_inputs, longest_input, model_input, pad_to
from bigmodel_cli.deploy.measure import accuracy, baseline_row, latencies, size_mb, torch_size_mb
from bigmodel_cli.deploy.prune import magnitude_prune, sparsity
from bigmodel_cli.deploy.quantize import METHODS as QUANTIZE
from bigmodel_cli.deploy.quantize import quantize_dynamic, quantize_static
from bigmodel_cli.deploy.results import print_rows, require_counts, results_dir, write_table
from bigmodel_cli.errors import UserError
from bigmodel_cli.training.restore import require_checkpoint_path, restore

METHODS = (*QUANTIZE, "prune")


def calibration_batches(datamodule, count: int, fixed_length: int | None):
    """Training batches as the data holds them (no augmentation: that runs on device in training)."""
    datamodule.setup("fit")
    for index, batch in enumerate(datamodule.train_dataloader()):
        if index == count:
            return
        x = model_input(batch)
        yield x if fixed_length is None else pad_to(x, fixed_length)


def onnx_row(method: str, path: Path, model, datamodule, inputs, repeats: int) -> dict:
    return {
        "method": method,
        "file": path.name,
        "size_mb": size_mb(path),
        "test_acc": accuracy(model, datamodule),
        **latencies(model, inputs, repeats),
    }


def quantized(cfg, module, datamodule, model, inputs, where: Path) -> list[dict]:
    """Rows: the float ONNX model, then its int8 copy."""
    fp32 = where / "model_fp32.onnx"
    exported = export(model, inputs[:EXAMPLE_BATCH], fp32, "onnx", longest_input(datamodule), model_name(module))
    target = where / f"model_{cfg.method.removeprefix('quantize_')}_int8.onnx"
    if cfg.method == "quantize_dynamic":
        quantize_dynamic(fp32, target)
    else:
        quantize_static(fp32, target, calibration_batches(datamodule, cfg.calibration_batches, exported.fixed_length))
    int8 = runner(type(exported)(target, "onnx", exported.fixed_length))
    return [
        onnx_row("onnx_fp32", fp32, runner(exported), datamodule, inputs, cfg.repeats),
        onnx_row(cfg.method, target, int8, datamodule, inputs, cfg.repeats),
    ]


def pruned(cfg, module, datamodule, model, inputs, where: Path) -> list[dict]:
    """Rows: the checkpoint's model, then a pruned copy, saved as a checkpoint `bigmodel test` takes."""
    if not 0 < cfg.amount < 1:
        raise UserError(
            f"amount={cfg.amount} is not a fraction of the weights; fix: a number between 0 and 1, e.g. amount=0.5"
        )
    thinned = copy.deepcopy(model)
    reached = magnitude_prune(thinned, float(cfg.amount))
    checkpoint = load_checkpoint(cfg.ckpt_path)
    checkpoint["state_dict"] = {
        **checkpoint["state_dict"],
        **{f"backbone.{k}": v for k, v in thinned.backbone.state_dict().items()},
    }
    path = where / f"pruned_{round(cfg.amount * 100)}.ckpt"
    atomic_save(checkpoint, path)
    return [
        {
            "method": "pytorch",
            **baseline_row(model, datamodule, inputs, where, cfg.repeats),
            "sparsity": sparsity(model),
        },
        {
            "method": "prune",
            "file": path.name,
            "size_mb": torch_size_mb(thinned, where),
            "test_acc": accuracy(thinned, datamodule),
            **latencies(thinned, inputs, cfg.repeats),
            "amount": float(cfg.amount),
            "sparsity": reached,
        },
    ]


def run(cfg: DictConfig) -> dict[str, float]:
    require_checkpoint_path(cfg)
    if cfg.method not in METHODS:
        raise UserError(f"method={cfg.method} is not a compression method; valid choices: {', '.join(METHODS)}")
    require_counts(cfg, {"repeats": 50, **({"calibration_batches": 16} if cfg.method == "quantize_static" else {})})
    prepare(cfg)
    module, datamodule = restore(cfg)
    where = results_dir(cfg.ckpt_path, cfg.results_dir, "compress")
    model = deployable(module, datamodule)
    inputs = held_out_inputs(datamodule, 64)
    with torch.no_grad():
        rows = (pruned if cfg.method == "prune" else quantized)(cfg, module, datamodule, model, inputs, where)
    paths = write_table(where, "compress", "method", rows)
    print_rows(f"bigmodel compress: {cfg.ckpt_path}", rows, "method", [where / rows[-1]["file"], *paths])
    return {f"compress/{k}": float(v) for k, v in rows[-1].items() if isinstance(v, (int, float))}


def main(cfg: DictConfig):
    return task_main(run, cfg)
