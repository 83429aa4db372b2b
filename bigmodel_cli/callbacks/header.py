"""The few lines a run starts with: where it writes, what model and data, on which devices, and how
the batch adds up. Printed once (rank zero) when fitting starts, after the data is set up, so the
split sizes are the real ones."""

from __future__ import annotations

import re

from pytorch_lightning import Callback

from bigmodel_cli.callbacks.summary import count_parameters, human

SPLIT_ORDER = {"train": 0, "val": 1, "test": 2, "predict": 3}


class RunHeader(Callback):
    def __init__(self, run_dir: str, model: str | None = None, data: str | None = None):
        self.run_dir, self.model, self.data = run_dir, model, data

    def on_fit_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            print(self.text(trainer, pl_module))

    def text(self, trainer, pl_module) -> str:
        backbone = getattr(pl_module, "backbone", pl_module)
        model = f"{self.model or type(backbone).__name__.lower()} ({human(count_parameters(backbone))} parameters)"
        rows = [("run", self.run_dir), ("model", model), ("data", self.data_text(trainer.datamodule))]
        rows.append(("devices", devices_text(trainer)))
        batch_size = getattr(trainer.datamodule, "batch_size", None)
        if batch_size:
            rows.append(("batch", global_batch_text(batch_size, trainer, getattr(pl_module, "full_batch", False))))
        return "\n".join(f"{key:<8} {value}" for key, value in rows)

    def data_text(self, datamodule) -> str:
        name = self.data or type(datamodule).__name__
        datasets = getattr(datamodule, "datasets", {}) or {}
        order = sorted(datasets, key=lambda split: SPLIT_ORDER.get(split, len(SPLIT_ORDER)))
        sizes = " / ".join(f"{len(datasets[s]):,} {s}" for s in order if hasattr(datasets[s], "__len__"))
        classes = getattr(datamodule, "num_classes", None)
        # A language model's "classes" are its vocabulary.
        unit = (
            "classes"
            if getattr(datamodule, "task", "classification") == "classification"
            else "tokens in the vocabulary"
        )
        parts = [p for p in (sizes, f"{classes} {unit}" if classes else "") if p]
        return f"{name}: {', '.join(parts)}" if parts else name


def devices_text(trainer) -> str:
    accelerator = type(trainer.accelerator).__name__.removesuffix("Accelerator").lower()
    # SingleDeviceStrategy -> "single device", DDPStrategy -> "ddp"
    strategy = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", type(trainer.strategy).__name__.removesuffix("Strategy")).lower()
    nodes = f" x {trainer.num_nodes} nodes" if trainer.num_nodes > 1 else ""
    return f"{trainer.num_devices} {accelerator}{nodes}, strategy {strategy}, precision {trainer.precision}"


def global_batch_text(batch_size: int, trainer, full_batch: bool = False) -> str:
    """How the per-device batch adds up across devices, nodes and gradient accumulation; under
    full-batch gd (one step per epoch) the step's batch is the whole training split."""
    devices, nodes = trainer.num_devices, trainer.num_nodes
    spread = (
        f"{batch_size} per device x {devices} device{'s' if devices > 1 else ''} "
        f"x {nodes} node{'s' if nodes > 1 else ''}"
    )
    if full_batch:
        return f"full batch: one optimizer step per epoch on the whole training split, read in batches of {spread}"
    accumulate = int(getattr(trainer, "accumulate_grad_batches", 1) or 1)
    line = f"global batch {batch_size * devices * nodes * accumulate} = {spread}"
    return line + (f" x {accumulate} accumulated batches" if accumulate > 1 else "")
