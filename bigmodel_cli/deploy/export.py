"""A trained model as a file that runs without bigmodel: ONNX (through torch.export and torch's
ONNX exporter) or a torch.export program (.pt2), each with a dynamic batch dimension and, for
text, a dynamic sequence length; and runners that call the file back for the checks.

The exported model takes what the data holds (uint8 pixels or token ids): image normalisation is
inside it (Deployable), so a deployment feeds it raw images."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from bigmodel_cli.atomic import atomic_path
from bigmodel_cli.deploy.inputs import is_token_input, pad_to
from bigmodel_cli.errors import UserError

EXAMPLE_BATCH = 8  # the example batch an export traces with

FORMATS = ("onnx", "pt2")
SUFFIX = {"onnx": ".onnx", "pt2": ".pt2"}
OPSET = 18


class Deployable(nn.Module):
    """The backbone behind the data's own input step: uint8 pixels -> float, /255, normalised
    with the training statistics (as the image datamodule does on device); token ids pass as they are."""

    def __init__(self, backbone: nn.Module, mean: torch.Tensor | None = None, std: torch.Tensor | None = None):
        super().__init__()
        self.backbone = backbone
        self.normalise = mean is not None
        if self.normalise:
            self.register_buffer("mean", mean.detach().clone().float())
            self.register_buffer("std", std.detach().clone().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalise:
            x = (x.float() / 255 - self.mean) / self.std
        return self.backbone(x)


def model_name(module) -> str:
    return module.config["model"]["_target_"].rsplit(".", 1)[-1].lower()


def deployable(module, datamodule) -> Deployable:
    mean, std = getattr(datamodule, "mean", None), getattr(datamodule, "std", None)
    return Deployable(module.backbone, mean, std).eval()


@dataclass
class Exported:
    path: Path
    format: str
    # Text models whose code fixes the sequence length when traced (torch's LSTM) take inputs
    # padded to this length; None: any length.
    fixed_length: int | None = None


def trace(model: nn.Module, example: torch.Tensor, max_length: int | None, name: str):
    """torch.export with the batch (and text length) dynamic. A model whose code turns the text
    length into a constant is traced again at the data's max_length; one that fixes the batch
    size cannot be deployed and is one line."""
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    if not is_token_input(example):
        return export_program(model, example, {0: batch}, name), None
    # Up to the data's longest input: models with a table of positions take no more.
    length = torch.export.Dim("length", min=2, max=max(max_length or 1 << 12, example.shape[1]))
    try:
        return export_program(model, example, {0: batch, 1: length}, name), None
    except FixedDimension as exc:
        if exc.dim != "length" or not max_length:
            raise UserError(str(exc)) from None
    padded = pad_to(example, max_length)
    return export_program(model, padded, {0: batch}, name), max_length


class FixedDimension(Exception):
    def __init__(self, dim: str, message: str):
        super().__init__(message)
        self.dim = dim


def export_program(model: nn.Module, example: torch.Tensor, dims: dict, name: str):
    from torch._dynamo.exc import UserError as ExportUserError

    try:
        with torch.no_grad(), quiet_exporter():
            return torch.export.export(model, (example,), dynamic_shapes=(dims,), strict=False)
    except ExportUserError as exc:
        text = str(exc)
        fixed = next((d for d in ("batch", "length") if f"Constraints violated ({d})" in text), None)
        if fixed is None:
            raise UserError(f"model={name} cannot be exported: {text.splitlines()[0][:200]}") from None
        raise FixedDimension(
            fixed,
            f"model={name} cannot be exported with a dynamic {fixed} dimension: its code turns the "
            f"{fixed} size into a constant when traced; fix: export is not available for this model yet",
        ) from None


def export(
    model: nn.Module, example: torch.Tensor, path: Path, fmt: str, max_length: int | None, name: str
) -> Exported:
    """Write `model` (in eval mode, given a real example input) as `fmt` to `path`."""
    program, fixed_length = trace(model, example, max_length, name)
    with atomic_path(path) as tmp:
        if fmt == "pt2":
            torch.export.save(program, str(tmp))
        else:
            with quiet_exporter():
                onnx_program = torch.onnx.export(program, dynamo=True, opset_version=OPSET, verbose=False)
            onnx_program.save(str(tmp))
    return Exported(path, fmt, fixed_length)


class quiet_exporter:
    """The exporters print progress banners and warnings (to the job's log file instead)."""

    def __enter__(self):
        self.warnings = warnings.catch_warnings()
        self.warnings.__enter__()
        warnings.simplefilter("ignore")
        self.level = logging.getLogger("torch").level
        logging.getLogger("torch").setLevel(logging.ERROR)

    def __exit__(self, *exc):
        logging.getLogger("torch").setLevel(self.level)
        self.warnings.__exit__(*exc)


def runner(exported: Exported):
    """A callable tensor -> logits tensor running the exported file, not the Python model."""
    if exported.format == "pt2":
        program = torch.export.load(str(exported.path)).module()
        call = program
    else:
        call = onnx_session(exported.path)
    if exported.fixed_length is None:
        return call
    return lambda x: call(pad_to(x, exported.fixed_length))


def onnx_session(path: Path, threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def call(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {name: x.numpy()})[0])

    return call
