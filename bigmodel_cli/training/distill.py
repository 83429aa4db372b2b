"""distill.teacher=<run>: the teacher's model rebuilt from its checkpoint and attached to the
student (lightning_modules/distillation.Distiller does the rest)."""

from __future__ import annotations

from bigmodel_cli.checkpoints.files import load_checkpoint, saved_config
from bigmodel_cli.config.instantiate import check_targets
from bigmodel_cli.errors import UserError
from bigmodel_cli.lightning_modules.distillation import Distiller
from bigmodel_cli.training.assembly import allowed, build_module
from bigmodel_cli.training.init_from import checkpoint_path, model_name


def attach_teacher(cfg, module) -> str:
    """Give `module` a Distiller around the teacher named by cfg.distill; returns a line saying so."""
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
    module.distiller = Distiller(teacher.backbone, float(distill.temperature), float(distill.alpha))
    count = sum(p.numel() for p in teacher.backbone.parameters())
    return f"distilling from {model_name(config)} ({count:,} parameters) at T={distill.temperature}, alpha={distill.alpha}: {source}"
