"""resume=<run dir> | auto: continuing a run from its newest good checkpoint."""

from __future__ import annotations

import torch

from bigmodel_cli.commands import train
from tests.conftest import FAST, TWO_EPOCHS


def epochs_logged(run_dir, column="val/acc") -> list[int]:
    import csv

    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f) if row.get(column)]


def test_resume_falls_back_from_a_corrupt_last_checkpoint(trained, compose_cfg, tmp_path, capsys):
    run_dir, _ = trained
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])  # truncated, as by a kill mid-write without atomic saves
    overrides = [
        *[o for o in TWO_EPOCHS if o != "logger=none"],
        "accelerator=cpu",
        "trainer.max_epochs=3",
        f"resume={run_dir}",
    ]
    with compose_cfg("train", overrides, name="trained") as cfg:
        train.run(cfg)
    out = capsys.readouterr().out
    assert f"skipping unreadable checkpoint {last}" in out
    assert "best.ckpt" in out.split("resuming", 1)[1].splitlines()[0]
    best_epoch = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)["epoch"]
    assert epochs_logged(run_dir) == [0, 1, 2], "CSV log has duplicate or missing epochs"
    assert torch.load(last, weights_only=True)["epoch"] == 2 >= best_epoch


def test_resume_of_a_missing_run_is_an_error(cli, in_tmp_cwd):
    code, _, err = cli("train", *FAST, "resume=outputs/train/nope")
    assert code == 2 and "resume=outputs/train/nope: no run there" in err
    assert not (in_tmp_cwd / "outputs" / "train" / "nope").exists()


def test_resume_auto_starts_fresh_then_resumes(cli, in_tmp_cwd):
    code, out, err = cli("train", *FAST, "run_name=auto1", "resume=auto")
    assert code == 0, err
    assert "no checkpoint in" in out and "starting fresh" in out
    code, out, err = cli("train", *FAST, "run_name=auto1", "resume=auto", "trainer.max_epochs=2")
    assert code == 0, err
    assert "resuming" in out and "outputs/train/auto1/checkpoints/last.ckpt (epoch 0" in out
    ckpt = torch.load(in_tmp_cwd / "outputs/train/auto1/checkpoints/last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 1


def test_the_same_command_with_resume_appended_continues_and_a_changed_group_is_one_line(cli, in_tmp_cwd):
    """Users retype the command that started the run with resume= added: group choices that agree
    with the run's are accepted (list choices included); one that differs is one line, nothing run."""
    command = [*FAST, "accelerator=cpu", "regularizer=[l2,dropout]", "run_name=retyped"]
    code, _, err = cli("train", *command)
    assert code == 0, err
    run_dir = in_tmp_cwd / "outputs" / "train" / "retyped"
    code, out, err = cli(
        "train", *[o for o in command if o != "trainer.max_epochs=1"], "trainer.max_epochs=2", f"resume={run_dir}"
    )
    assert code == 0, err
    assert "resuming" in out and epochs_logged(run_dir) == [0, 1]

    before = (run_dir / "run.json").read_text()
    code, _, err = cli("train", "accelerator=cpu", "regularizer=l2", f"resume={run_dir}")
    assert code == 2
    assert err.strip().count("\n") == 0, err
    assert "regularizer=l2 differs from the run's regularizer=[l2,dropout]" in err and "fix: drop regularizer=l2" in err
    assert (run_dir / "run.json").read_text() == before
