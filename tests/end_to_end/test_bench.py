"""scripts/bench.py --quick runs end to end and writes its table with every row (no timing is
asserted: performance is claimed by the benchmark's numbers, never by a timed test)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import torch

from tests.support.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


def test_bench_quick_writes_every_row(tmp_path):
    out = tmp_path / "bench"
    # A stand-in for a lightning-hydra-template checkout: its src/train.py is what --peer runs.
    peer = tmp_path / "peer"
    (peer / "src").mkdir(parents=True)
    (peer / "src" / "train.py").write_text(
        "import sys\nimport torch, pytorch_lightning\nassert sys.argv[1:] == ['debug=fdr']\n"
    )
    # The peer in two environments, one without scipy (as the base install has it).
    sys.path.insert(0, str(ROOT / "scripts"))
    from base_install import make_base_venv

    no_scipy = str(make_base_venv(tmp_path / "peer-venv"))
    peer_pythons = ["--peer-python", no_scipy, "--peer-python", sys.executable]
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench.py"),
            "--quick",
            "--out-dir",
            str(out),
            "--peer",
            str(peer),
            *peer_pythons,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    report = json.loads((out / "bench.json").read_text())
    cases = [row["case"] for row in report["rows"]]
    expected = [
        "this install: python -c 'import torch, pytorch_lightning' (the floor)",
        "this install: the floor, exiting as bigmodel does",
        "bigmodel --help",
        "bigmodel train --cfg job",
        "this install: bigmodel train debug=fdr",
        "base install: python -c 'import torch, pytorch_lightning' (the floor)",
        "base install: the floor, exiting as bigmodel does",
        "base install: bigmodel train debug=fdr",
        "lightning-hydra-template: python src/train.py debug=fdr (the peer, no scipy)",
        "lightning-hydra-template: python src/train.py debug=fdr (the peer, with scipy)",
    ]
    for model in ("mlp", "cnn"):
        expected += [
            f"{model}: plain PyTorch loop",
            f"{model}: bare Lightning (the floor)",
            f"{model}: bigmodel train (defaults)",
            f"{model}: bigmodel train (minimal)",
        ]
    expected += ["bigmodel train experiment=fashion_mnist_fast", "bigmodel train experiment=fashion_mnist_92"]
    assert cases == expected
    for row in report["rows"]:
        assert row["value"] > 0 and row["peak_rss_mb"] > 0, row
    assert all("ratio" in row for row in report["rows"] if row["section"] == "per epoch")
    against_floor = [r for r in report["rows"] if "bigmodel train (" in r["case"] or r["case"].endswith("debug=fdr")]
    assert len(against_floor) == 6 and all("vs_floor" in row for row in against_floor)
    fdr = [r for r in report["rows"] if r["case"].endswith("bigmodel train debug=fdr")]
    assert len(fdr) == 2 and all("vs_peer" in r and r["peer_target"] == 0.9 and "vs_exit_floor" in r for r in fdr)
    # Each install is set against the peer in an environment like its own (CI's has scipy).
    peers = [f"lightning-hydra-template: python src/train.py debug=fdr (the peer, {e} scipy)" for e in ("with", "no")]
    assert [r["peer"] for r in fdr] == peers, fdr
    table = (out / "bench.md").read_text()
    assert table in result.stdout, "the table is printed"
    assert all(case in table for case in expected)


def test_bench_data_rates_both_paths_and_names_what_is_not_batched(capsys):
    """scripts/bench_data.py: a row per option (none has no transforms: left out by default), both
    paths' rates, and the transforms the tensor path still applies image by image."""
    spec = importlib.util.spec_from_file_location("bench_data", ROOT / "scripts" / "bench_data.py")
    bench_data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_data)
    options = set(bench_data.image_options())
    assert {"flip_crop", "random_erasing"} <= options and "none" not in options
    threads = torch.get_num_threads()
    try:  # main() sets this process's torch threads; later in-process runs in this worker must not inherit it
        rows = bench_data.main(
            ["--images", "512", "--augmentations", "random_erasing", "trivialaugment", "color_jitter"]
        )
    finally:
        torch.set_num_threads(threads)
    by_option = {row["option"]: row for row in rows}
    assert by_option["random_erasing"]["image_by_image"] == by_option["trivialaugment"]["image_by_image"] == []
    assert by_option["color_jitter"]["image_by_image"] == ["ColorJitter"]
    assert all(min(row["per_sample"]) > 0 and row["batched"] > 0 for row in rows)
    assert "| random_erasing |" in capsys.readouterr().out


def test_bench_mlm_times_both_ways_of_projecting_on_the_module_train_builds(capsys):
    """scripts/bench_mlm.py: a row per shape, each way's s/step measured on the module `bigmodel
    train data=text_corpus model=bert` builds (the seconds themselves are for the full run)."""
    assert load_script("bench_mlm").main(["--dims", "32", "--vocab-sizes", "300", "--steps", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 32 |")]
    assert len(rows) == 1 and rows[0].startswith("| 32 | 300 |") and rows[0].endswith("x |")
