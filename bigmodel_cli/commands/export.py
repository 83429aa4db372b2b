"""bigmodel export: a checkpoint's model as an ONNX file or a torch.export program, with a dynamic
batch (and text length), checked against PyTorch on the run's own test split."""

from __future__ import annotations

from omegaconf import DictConfig

from bigmodel_cli.commands.job import prepare, task_main
from bigmodel_cli.deploy.export import EXAMPLE_BATCH, FORMATS, SUFFIX, deployable, export, model_name, runner
from bigmodel_cli.deploy.inputs import held_out_inputs, longest_input
from bigmodel_cli.deploy.measure import accuracy, baseline_row, latencies, parity, size_mb
from bigmodel_cli.deploy.results import print_rows, require_counts, results_dir, write_table
from bigmodel_cli.errors import UserError
from bigmodel_cli.training.restore import require_checkpoint_path, restore


def input_text(x, fixed_length: int | None) -> str:
    dims = ["batch", *map(str, x.shape[1:])]
    if x.ndim == 2:
        dims[1] = f"{fixed_length} (pad with 0)" if fixed_length else "length"
    return f"{str(x.dtype).removeprefix('torch.')} ({', '.join(dims)})"


def run(cfg: DictConfig) -> dict[str, float]:
    require_checkpoint_path(cfg)
    if cfg.format not in FORMATS:
        raise UserError(f"format={cfg.format} is not an export format; valid choices: {', '.join(FORMATS)}")
    require_counts(cfg, {"repeats": 50})
    prepare(cfg)
    module, datamodule = restore(cfg)
    where = results_dir(cfg.ckpt_path, cfg.results_dir, "export")
    model = deployable(module, datamodule)
    inputs = held_out_inputs(datamodule, 64)
    path = where / f"model{SUFFIX[cfg.format]}"
    exported = export(model, inputs[:EXAMPLE_BATCH], path, cfg.format, longest_input(datamodule), model_name(module))
    candidate = runner(exported)
    row = {
        "format": cfg.format,
        "file": path.name,
        "inputs": input_text(inputs, exported.fixed_length),
        "size_mb": size_mb(path),
        **parity(model, candidate, datamodule),
        "test_acc": accuracy(candidate, datamodule),
        **latencies(candidate, inputs, cfg.repeats),
    }
    rows = [{"format": "pytorch", **baseline_row(model, datamodule, inputs, where, cfg.repeats)}, row]
    paths = write_table(where, "export", "format", rows)
    print_rows(f"bigmodel export: {cfg.ckpt_path}", rows, "format", [path, *paths])
    return {f"export/{k}": float(v) for k, v in row.items() if isinstance(v, (int, float)) and v is not None}


def main(cfg: DictConfig):
    return task_main(run, cfg)
