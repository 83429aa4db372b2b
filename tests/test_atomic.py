"""Files are written whole or not at all: a writer interrupted part-way leaves the previous file
(or none) under the final name, never a truncated one, and no temporary file behind."""

from __future__ import annotations

import os

import pytest
import torch

from bigmodel_cli.atomic import atomic_path, write_text


class Interrupted(Exception):
    pass


def test_an_interrupted_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "table.md"
    write_text(target, "old table\n")
    with pytest.raises(Interrupted), atomic_path(target) as tmp:
        tmp.write_text("new tab")  # half of the new contents, then the process is interrupted
        raise Interrupted
    assert target.read_text() == "old table\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.md"]


def test_the_temp_file_keeps_the_suffix_and_the_result_the_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        with atomic_path(tmp_path / "plot.png") as tmp:
            assert tmp.suffix == ".png" and tmp.parent == tmp_path  # savefig picks its format by suffix
            tmp.write_bytes(b"png")
    finally:
        os.umask(previous)
    assert (tmp_path / "plot.png").stat().st_mode & 0o777 == 0o640


def test_an_export_killed_while_writing_leaves_no_model_file(tmp_path, monkeypatch):
    from bigmodel_cli.deploy import export as exporting

    def half_written(program, path):
        with open(path, "wb") as f:
            f.write(b"PK\x03\x04 half a file")
        raise Interrupted

    monkeypatch.setattr(torch.export, "save", half_written)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
    with pytest.raises(Interrupted):
        exporting.export(model, torch.zeros(2, 1, 2, 2), tmp_path / "model.pt2", "pt2", None, "mlp")
    assert list(tmp_path.iterdir()) == []
