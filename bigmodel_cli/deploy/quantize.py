"""Post-training int8 quantisation of an exported ONNX model with ONNX Runtime's quantizer (the
maintained path for CPU inference on today's torch; torch.ao's eager/FX quantisation is deprecated).
Dynamic: int8 weights, activations quantised on the fly. Static: activations too, with ranges
calibrated on training batches (QDQ format)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

METHODS = ("quantize_dynamic", "quantize_static")


def quantize_dynamic(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    model = prepared(source)
    try:
        ort_quantize_dynamic(str(model), str(target), weight_type=QuantType.QInt8)
    finally:
        model.unlink()


def quantize_static(source: Path, target: Path, calibration: Iterable[torch.Tensor]) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static as ort_quantize_static

    model = prepared(source)
    name = input_name(model)

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(calibration)

        def get_next(self):
            x = next(self.batches, None)
            return None if x is None else {name: x.numpy()}

    try:
        ort_quantize_static(
            str(model),
            str(target),
            Batches(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
        )
    finally:
        model.unlink()


def prepared(source: Path) -> Path:
    """The model with shapes inferred and graph optimisations done first, as ONNX Runtime advises
    before quantising (better fusion, fewer quantise/dequantise pairs); the caller deletes it."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    target = source.with_name(f".{source.stem}.prepared.onnx")
    quant_pre_process(str(source), str(target), skip_symbolic_shape=True)
    return target


def input_name(path: Path) -> str:
    import onnx

    return onnx.load(str(path), load_external_data=False).graph.input[0].name
