"""Safe checkpoints and configs: atomic saves, fallback from a broken checkpoint, weights_only
loading with an explicit --trust-checkpoint, the _target_ allowlist, stopping on a non-finite loss
and saving on SIGTERM/SIGUSR1."""

from __future__ import annotations

import argparse
import os
import signal

import pytest
import torch

from bigmodel_cli import checkpoints
from bigmodel_cli.errors import UserError
from bigmodel_cli.guards import NonFiniteLoss, TrainingInterrupted
from bigmodel_cli.instantiate import check_targets, is_allowed
from bigmodel_cli.modules.classifier import ClassificationModule
from bigmodel_cli.tasks import train
from tests.conftest import FAST

TWO_EPOCHS = [*[o for o in FAST if not o.startswith("trainer.max_epochs")], "trainer.max_epochs=2"]


@pytest.mark.parametrize("target", ["os.system", "subprocess.run", "subprocess.Popen", "builtins.eval", "torch.load"])
def test_allowlist_refuses_dangerous_targets(target):
    with pytest.raises(UserError, match=f"refusing to instantiate.*{target}"):
        check_targets({"callbacks": {"evil": {"_target_": target}}})


def test_allowlist_is_user_extendable():
    assert not is_allowed("my_pkg.models.Net")
    assert is_allowed("my_pkg.models.Net", ("my_pkg.",))


def test_cli_refuses_target_before_instantiating_anything(cli, in_tmp_cwd):
    code, _, err = cli("train", *FAST, "+callbacks.evil._target_=os.system", "+callbacks.evil.command=touch pwned")
    assert code == 2 and "refusing to instantiate callbacks.evil._target_=os.system" in err
    assert not (in_tmp_cwd / "pwned").exists()


def test_atomic_save_never_leaves_a_truncated_file(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    checkpoints.atomic_save({"state_dict": {"w": torch.ones(3)}}, path)
    real_save = torch.save

    def killed_mid_write(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial")  # the start of a zip, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.atomic_save({"state_dict": {"w": torch.zeros(3)}}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.equal(checkpoints.read_checkpoint(path)["state_dict"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"], "a temp file was left behind"


def test_unsafe_checkpoint_is_refused_unless_trusted(tmp_path, monkeypatch):
    path = tmp_path / "unsafe.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"config": {}, "args": argparse.Namespace(a=1)}}, path)
    with pytest.raises(checkpoints.UnsafeCheckpoint, match="arbitrary code.*--trust-checkpoint"):
        checkpoints.load_checkpoint(path)
    monkeypatch.setenv(checkpoints.TRUST_ENV, "1")
    assert checkpoints.load_checkpoint(path)["hyper_parameters"]["args"].a == 1


@pytest.fixture
def trained(compose_cfg, tmp_path):
    """A finished two-epoch run with a CSV log: (run dir, metrics)."""
    overrides = [*[o for o in TWO_EPOCHS if o != "logger=none"], "accelerator=cpu"]
    with compose_cfg("train", overrides, name="trained") as cfg:
        metrics = train.run(cfg)
    return tmp_path / "trained", metrics


def test_trust_checkpoint_flag_on_the_cli(cli, trained, in_tmp_cwd):
    run_dir, _ = trained
    checkpoint = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    checkpoint["extra"] = argparse.Namespace(note="pickled object")
    torch.save(checkpoint, in_tmp_cwd / "unsafe.ckpt")
    fast = [o for o in FAST if not o.startswith(("callbacks.model_summary", "trainer.max_epochs"))]
    code, _, err = cli("test", "ckpt_path=unsafe.ckpt", *fast)
    assert code == 2 and "unsafe unpickling" in err and "--trust-checkpoint" in err
    code, _, err = cli("test", "ckpt_path=unsafe.ckpt", "--trust-checkpoint", *fast)
    assert code == 0, err
    assert checkpoints.TRUST_ENV not in os.environ


def epochs_logged(run_dir, column="val/acc") -> list[int]:
    import csv

    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f) if row.get(column)]


def test_resume_falls_back_from_a_corrupt_last_checkpoint(trained, compose_cfg, tmp_path, capsys):
    run_dir, _ = trained
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])  # truncated, as by a kill mid-write without atomic saves
    overrides = [*[o for o in TWO_EPOCHS if o != "logger=none"], "accelerator=cpu", "trainer.max_epochs=3",
                 f"resume={run_dir}"]
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


def wrap_training_step(monkeypatch, after) -> None:
    """Make ClassificationModule.training_step return after(module, batch_idx, loss)."""
    original = ClassificationModule.training_step
    monkeypatch.setattr(ClassificationModule, "training_step",
                        lambda self, batch, batch_idx: after(self, batch_idx, original(self, batch, batch_idx)))


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(compose_cfg, tmp_path, monkeypatch):
    wrap_training_step(monkeypatch, after=lambda self, batch_idx, loss:
                       loss * float("nan") if self.current_epoch >= 1 else loss)
    with compose_cfg("train", [*TWO_EPOCHS, "accelerator=cpu"]) as cfg:
        with pytest.raises(NonFiniteLoss, match=r"loss is nan at step 3 \(epoch 1\).*last\.ckpt \(not overwritten\)"):
            train.run(cfg)
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 0 and last["global_step"] == 3
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
def test_stop_signal_saves_a_checkpoint_first(signum, compose_cfg, tmp_path, monkeypatch):
    def send(self, batch_idx, loss):
        if self.current_epoch == 1 and batch_idx == 1:
            os.kill(os.getpid(), signum)
        return loss

    wrap_training_step(monkeypatch, after=send)
    with compose_cfg("train", [*TWO_EPOCHS, "accelerator=cpu"]) as cfg:
        with pytest.raises(TrainingInterrupted, match=f"received {signal.Signals(signum).name} at step 5"):
            train.run(cfg)
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 5 and last["epoch"] == 1
    assert signal.getsignal(signum) in (signal.SIG_DFL, signal.default_int_handler) or callable(signal.getsignal(signum))


def test_deterministic_training_is_bitwise_identical(compose_cfg, tmp_path):
    results = []
    for name in ("a", "b"):
        with compose_cfg("train", [*TWO_EPOCHS, "accelerator=cpu", "deterministic=true"], name=name) as cfg:
            assert cfg.trainer.deterministic is True
            metrics = train.run(cfg)
        weights = torch.load(tmp_path / name / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        results.append((metrics, weights))
    (m1, w1), (m2, w2) = results
    assert m1 == m2
    assert w1.keys() == w2.keys() and all(torch.equal(w1[k], w2[k]) for k in w1)
