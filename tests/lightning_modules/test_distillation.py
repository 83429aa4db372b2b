"""distill.teacher: the student learns the teacher's outputs (its softened predictions move
towards the teacher's more than without distillation, same seed and budget); alpha=0 is the plain
loss; the temperature changes the soft loss; misuse is one line."""

from __future__ import annotations

import pytest
import torch

from bigmodel_cli.commands import train
from bigmodel_cli.errors import UserError
from bigmodel_cli.lightning_modules.distillation import soft_target_loss
from bigmodel_cli.training.pieces import build_datamodule, build_module, plain

STUDENT = ["model=mlp", "trainer.max_epochs=2"]


def disagreement(student_dir, teacher_dir, temperature=4.0) -> float:
    """Mean KL(teacher || student) at temperature T on the digits' test split."""
    from bigmodel_cli.checkpoints.files import load_checkpoint, saved_config

    logits = []
    for run in (teacher_dir, student_dir):
        checkpoint = load_checkpoint(run / "checkpoints" / "last.ckpt")
        config = saved_config(checkpoint)
        module = build_module(config)
        module.load_state_dict(checkpoint["state_dict"])
        datamodule = build_datamodule(config["data"])
        datamodule.setup("test")
        x = torch.cat([datamodule.on_after_batch_transfer(b, 0)[0] for b in datamodule.test_dataloader()])
        with torch.no_grad():
            logits.append(module.eval().backbone(x))
    return float(soft_target_loss(logits[1], logits[0], temperature))


def test_the_student_moves_towards_its_teacher(digits_run, compose_cfg, tmp_path):
    runs = {}
    for name, extra in (("plain", []), ("distilled", [f"distill.teacher={digits_run}", "distill.alpha=1.0"])):
        with compose_cfg("train", [*STUDENT, *extra], name=name) as cfg:
            train.run(cfg)
        runs[name] = tmp_path / name
    assert disagreement(runs["distilled"], digits_run) < 0.7 * disagreement(runs["plain"], digits_run)


def test_soft_loss_depends_on_temperature_and_vanishes_on_agreement():
    torch.manual_seed(0)
    student, teacher = torch.randn(8, 10), torch.randn(8, 10)
    assert float(soft_target_loss(teacher, teacher, 4.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(soft_target_loss(student, teacher, 1.0)) != pytest.approx(
        float(soft_target_loss(student, teacher, 4.0))
    )


def test_soft_loss_is_hintons_formula():
    """T^2 x KL(teacher || student) of the softened outputs, averaged over the batch: the teacher's
    distribution weighs the log-ratio (the other direction would give another number)."""
    torch.manual_seed(1)
    student, teacher, t = torch.randn(8, 10), torch.randn(8, 10) * 3, 4.0
    p_teacher, p_student = torch.softmax(teacher / t, -1), torch.softmax(student / t, -1)
    expected = (p_teacher * (p_teacher.log() - p_student.log())).sum(-1).mean() * t * t
    reverse = (p_student * (p_student.log() - p_teacher.log())).sum(-1).mean() * t * t
    assert float(soft_target_loss(student, teacher, t)) == pytest.approx(float(expected), rel=1e-5)
    assert float(expected) != pytest.approx(float(reverse), rel=1e-2)


def test_alpha_zero_is_the_plain_loss(digits_run, compose_cfg):
    from bigmodel_cli.training.distill import attach_teacher

    with compose_cfg("train", ["model=mlp", f"distill.teacher={digits_run}", "distill.alpha=0.0"]) as cfg:
        module = build_module(plain(cfg))
        attach_teacher(cfg, module, build_datamodule(cfg.data))
    torch.manual_seed(0)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    logits = module(x)
    plain_loss = module.criterion(logits, y)
    assert torch.equal(module.distiller.blend(plain_loss, logits, x), plain_loss)
    module.distiller.alpha = 0.5
    assert not torch.equal(module.distiller.blend(plain_loss, logits, x), plain_loss)


def test_a_teacher_of_other_data_is_one_line(digits_run, compose_cfg):
    from bigmodel_cli.training.distill import attach_teacher

    with compose_cfg("train", ["data=synthetic", "data.num_classes=3", f"distill.teacher={digits_run}"]) as cfg:
        module = build_module(plain(cfg))
        with pytest.raises(UserError, match="predicts 10 classes"):
            attach_teacher(cfg, module, build_datamodule(cfg.data))


def test_a_teacher_of_another_input_shape_is_one_line_before_training(digits_run, cli, in_tmp_cwd):
    """The digits CNN (1 x 8 x 8) cannot read 16 x 16 images: refused before the first step, one
    line naming both shapes, no checkpoint written (it used to crash mid-epoch)."""
    student = ["model=mlp", "data=synthetic", "data.image_size=16", "trainer.max_epochs=1", "run_name=student"]
    code, _, err = cli("train", *student, f"distill.teacher={digits_run}")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "1 x 8 x 8" in err and "1 x 16 x 16" in err and "distill.teacher=" in err, err
    assert not (in_tmp_cwd / "outputs" / "train" / "student" / "checkpoints").exists()
    # The same student, same shape as the teacher: distils.
    code, _, err = cli("train", *student[:-1], "data.image_size=8", "run_name=same", f"distill.teacher={digits_run}")
    assert code == 0, err
