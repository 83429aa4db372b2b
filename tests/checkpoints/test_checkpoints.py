"""Checkpoint files: atomic saves, weights_only loading, and --trust-checkpoint (recorded in run.json)."""

from __future__ import annotations

import argparse
import json
import os

import pytest
import torch

from bigmodel_cli import process_state
from bigmodel_cli.checkpoints import files as checkpoints
from tests.conftest import FAST


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


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_save_honours_the_umask(tmp_path, umask):
    """The temp file mkstemp makes is 0600; the checkpoint gets 0666 & ~umask like any new file."""
    old = os.umask(umask)
    try:
        checkpoints.atomic_save({"state_dict": {}}, tmp_path / "last.ckpt")
    finally:
        os.umask(old)
    assert (tmp_path / "last.ckpt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_unsafe_checkpoint_is_refused_unless_trusted(tmp_path, monkeypatch):
    path = tmp_path / "unsafe.ckpt"
    config = {"model": {"_target_": "bigmodel_cli.models.mlp.MLP"}, "data": {}}
    torch.save({"state_dict": {}, "hyper_parameters": {"config": config, "args": argparse.Namespace(a=1)}}, path)
    with pytest.raises(checkpoints.UnsafeCheckpoint, match="arbitrary code.*--trust-checkpoint"):
        checkpoints.load_checkpoint(path)
    monkeypatch.setenv(process_state.TRUST_ENV, "1")
    assert checkpoints.load_checkpoint(path)["hyper_parameters"]["args"].a == 1


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
    assert process_state.TRUST_ENV not in os.environ
    records = [json.loads(p.read_text()) for p in sorted((in_tmp_cwd / "outputs" / "test").glob("*/run.json"))]
    assert sorted(r["trust_checkpoint"] for r in records) == [False, True]  # the refused run, the trusted one


def test_a_checkpoint_saved_before_the_package_move_still_tests(cli, trained, in_tmp_cwd):
    """Its saved config names bigmodel_cli.progress.RichProgressBar, which now lives in callbacks/."""
    run_dir, _ = trained
    checkpoint = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    config = checkpoint["hyper_parameters"]["config"]
    config["callbacks"]["progress_bar"]["_target_"] = "bigmodel_cli.progress.RichProgressBar"
    torch.save(checkpoint, in_tmp_cwd / "old.ckpt")
    fast = [o for o in FAST if not o.startswith("trainer.max_epochs")]
    code, _, err = cli("test", "ckpt_path=old.ckpt", *fast)
    assert code == 0, err
    config["callbacks"]["progress_bar"]["_target_"] = "bigmodel_cli.nowhere.RichProgressBar"  # not a moved name
    torch.save(checkpoint, in_tmp_cwd / "bad.ckpt")
    code, _, err = cli("test", "ckpt_path=bad.ckpt", *fast)
    assert code == 2 and "bigmodel_cli.nowhere.RichProgressBar" in err
