"""A model summary that describes the model: the backbone's layers (not the loss or metric modules
the LightningModule also holds), their parameters, output shapes and FLOPs, in a table whose
headers are never cut short.

`max_depth` counts from the backbone: 1 lists its direct children, 2 their children too.
A subclass of Lightning's ModelSummary, so Lightning adds no summary of its own beside it.
"""

from __future__ import annotations

import torch
from pytorch_lightning.callbacks import ModelSummary
from torch import nn


class BackboneSummary(ModelSummary):
    def __init__(self, max_depth: int = 2):
        super().__init__(max_depth=max_depth)

    def on_fit_start(self, trainer, pl_module) -> None:
        if not self._max_depth or not trainer.is_global_zero:
            return
        from rich.console import Console

        backbone = getattr(pl_module, "backbone", pl_module)
        example = getattr(pl_module, "example_input_array", None)
        # A sharded model (FSDP) cannot run a forward pass on one rank alone.
        measure = example is not None and "FSDP" not in type(trainer.strategy).__name__
        if measure:  # as a batch reaches the model: on its device, in its dtype (trainer.precision=bf16-true)
            example = trainer.precision_plugin.convert_input(example.to(pl_module.device))
        shapes, flops = measure_layers(backbone, example) if measure else ({}, {})
        Console().print(summary_table(backbone, self._max_depth, shapes, flops))
        print(totals_line(backbone, flops.get("", 0), len(example) if measure else 0))


def layers(model: nn.Module, max_depth: int) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if name and name.count(".") < max_depth]


def measure_layers(model: nn.Module, example: torch.Tensor) -> tuple[dict[str, tuple], dict[str, int]]:
    """Each layer's output shape and FLOPs for one forward pass on `example` (eval mode, no grad,
    so batch-norm statistics do not move); the whole model's FLOPs under the name ""."""
    from torch.utils.flop_counter import FlopCounterMode

    shapes: dict[str, tuple] = {}

    def keep_shape(name):
        def hook(_module, _inputs, output):
            if isinstance(output, torch.Tensor):
                shapes[name] = tuple(output.shape[1:])

        return hook

    handles = [m.register_forward_hook(keep_shape(name)) for name, m in model.named_modules() if name]
    was_training = model.training
    model.eval()
    try:
        # compile=true: measured eagerly (FLOPs are counted per eager op; no graph compiled for this).
        with torch.no_grad(), torch.compiler.set_stance("force_eager"), FlopCounterMode(display=False) as counter:
            model(example)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    root = type(model).__name__
    flops = {
        ("" if name in (root, "Global") else name.removeprefix(root + ".")): sum(ops.values()) // len(example)
        for name, ops in counter.get_flop_counts().items()
    }
    return shapes, flops


def summary_table(model: nn.Module, max_depth: int, shapes: dict, flops: dict):
    from rich.table import Table

    table = Table(title=f"model: {type(model).__name__}", title_justify="left")
    for header, justify in (("layer", "left"), ("type", "left"), ("params", "right"), ("output", "right")):
        table.add_column(header, justify=justify, min_width=len(header))
    if flops:
        table.add_column("FLOPs", justify="right", min_width=5)
    for name, module in layers(model, max_depth):
        indent = "  " * name.count(".")
        shape = "x".join(str(d) for d in shapes[name]) if name in shapes else ""
        row = [indent + name.rsplit(".", 1)[-1], type(module).__name__, human(count_parameters(module)), shape]
        if flops:
            row.append(human(flops.get(name, 0)))
        table.add_row(*row)
    return table


def totals_line(model: nn.Module, total_flops: int, batch: int) -> str:
    params = count_parameters(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    size_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 1e6
    line = f"{human(params)} parameters ({human(trainable)} trainable), {size_mb:.2f} MB"
    return line + (f", {human(total_flops)} FLOPs per sample" if batch else "")


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def human(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return str(int(n))
