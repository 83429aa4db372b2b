"""distill.teacher=<run>: the teacher's model rebuilt from its checkpoint and attached to the
student (lightning_modules/distillation.Distiller does the rest)."""

from __future__ import annotations

from bigmodel_cli.checkpoints.files import load_checkpoint, saved_config
from bigmodel_cli.config.instantiate import check_targets
from bigmodel_cli.errors import UserError
from bigmodel_cli.lightning_modules.distillation import Distiller
from bigmodel_cli.training.init_from import checkpoint_path, model_name
from bigmodel_cli.training.pieces import allowed, build_datamodule, build_module


def attach_teacher(cfg, module, datamodule) -> str:
    """Give `module` a Distiller around the teacher named by cfg.distill, once the teacher is
    checked on a batch of the run's data; returns a line saying so."""
    distill = cfg.distill
    source = str(distill.teacher)
    if not 0 <= float(distill.alpha) <= 1 or float(distill.temperature) <= 0:
        raise UserError(
            f"distill.alpha={distill.alpha} distill.temperature={distill.temperature}: alpha is the soft loss's "
            f"share (0 to 1) and temperature a positive number; fix: e.g. distill.alpha=0.9 distill.temperature=4"
        )
    if module.config["data"].get("task", "classification") != "classification":
        raise UserError(f"distill.teacher={source}: distillation is for classifiers; fix: drop distill.teacher")
    checkpoint = load_checkpoint(checkpoint_path(source, "distill.teacher"))
    config = saved_config(checkpoint)
    check_targets(config, allowed(cfg))
    theirs, ours = config["data"].get("num_classes"), module.config["data"].get("num_classes")
    if config["data"].get("task", "classification") != "classification" or theirs != ours:
        raise UserError(
            f"distill.teacher={source}: its {model_name(config)} predicts {theirs} classes of {config['data'].get('task', 'classification')} "
            f"data, this run {ours} classes; fix: a teacher trained on the same data"
        )
    teacher = build_module(config)
    teacher.load_state_dict(checkpoint["state_dict"])
    check_teacher_reads(teacher.backbone, config, cfg, source, datamodule.example_input(2))
    module.distiller = Distiller(teacher.backbone, float(distill.temperature), float(distill.alpha))
    count = sum(p.numel() for p in teacher.backbone.parameters())
    return f"distilling from {model_name(config)} ({count:,} parameters) at T={distill.temperature}, alpha={distill.alpha}: {source}"


def shape_text(example) -> str:
    """One input's shape: C x H x W for images, the length for tokens."""
    return " x ".join(map(str, example.shape[1:])) if example.ndim > 2 else f"{example.shape[1]} tokens"


def input_shape(data_config: dict, allow) -> str:
    """The shape of one input of a data config, as its DataModule makes it; from the config's
    sizes when the DataModule cannot be built here."""
    try:
        return shape_text(build_datamodule(data_config, allow).example_input(1))
    except Exception:  # noqa: BLE001 - only the description is at stake
        sizes = [data_config.get(k) for k in ("in_channels", "image_size", "image_size")]
        return " x ".join(map(str, sizes)) if None not in sizes else f"{data_config.get('max_length', '?')} tokens"


def check_teacher_reads(teacher, teacher_config: dict, cfg, source: str, example) -> None:
    """One forward pass of the teacher on a dummy batch of the student's data, before training:
    a teacher trained on inputs of another shape is one line naming both, not a crash mid-epoch."""
    import torch

    try:
        with torch.no_grad():
            out = teacher.eval()(example)
    except (RuntimeError, ValueError, IndexError) as exc:
        theirs, ours = input_shape(teacher_config["data"], allowed(cfg)), shape_text(example)
        raise UserError(
            f"distill.teacher={source}: its {model_name(teacher_config)} was trained on {theirs} inputs and cannot "
            f"read this run's {ours} ({str(exc).splitlines()[0][:120]}); fix: a teacher trained on data of this "
            f"shape, or set data.image_size/data.in_channels to the teacher's"
        ) from None
    if out.shape[-1] != cfg.data.num_classes:
        raise UserError(
            f"distill.teacher={source}: its {model_name(teacher_config)} outputs {out.shape[-1]} classes on this "
            f"run's data, which has {cfg.data.num_classes}; fix: a teacher trained on the same data"
        )
