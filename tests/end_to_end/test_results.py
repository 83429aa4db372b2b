"""scripts/results.py: --quick prints every row's table from real `bigmodel` runs on small files
in the real formats (its numbers mean nothing at that size: performance and accuracy are claimed
by the full run's table in README), and its TF-IDF baseline reads the very splits the models read."""

from __future__ import annotations

import subprocess
import sys

from tests.support.data_files import write_brown, write_fortunes, write_mnist_like
from tests.support.scripts import ROOT, load_script

BROWN_FILES = tuple((f"c{genre}{n:02d}", 10) for genre in "apj" for n in range(1, 5))  # news, romance, learned
SMALL = [
    ("fortunes", "data.num_classes=3"),
    ("fortunes", "data.min_quotations=1"),
    ("fortunes", "data.min_freq=1"),
    ("brown", "data.num_classes=3"),
    ("brown", "data.min_freq=1"),
    ("mlm_text", "data.min_freq=1"),
]


def test_quick_prints_every_row(tmp_path):
    write_mnist_like(tmp_path / "fashion" / "FashionMNIST" / "raw", train=200, test=50)
    write_fortunes(tmp_path / "fortunes", per_category=(20, 20, 20))
    write_brown(tmp_path / "brown" / "package", files=BROWN_FILES)
    extra = [arg for data, override in SMALL for arg in ("--extra", data, override)]
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "results.py"), "--quick", "--out-dir", str(tmp_path / "out"),
         "--fashion-root", str(tmp_path / "fashion"), "--fortunes-root", str(tmp_path / "fortunes"),
         "--brown-root", str(tmp_path / "brown"), *extra],
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    results = load_script("results")
    for title, _ in results.ROWS.values():
        assert f"### {title}" in out
    expected_lines = {  # rows of each table, past its header
        "Pretraining": 4,
        "Text classification": 2,
        "Distillation": 2,
        "Fashion-MNIST recipes": 2,
        "Augmentation": 12 + 2 * len(results.L2_STRENGTHS),
        "The lr finder": len(results.LR_SWEEP) + 2,
    }
    for table in out.split("### ")[1:]:
        title = table.splitlines()[0]
        rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
        (count,) = [n for prefix, n in expected_lines.items() if title.startswith(prefix)]
        assert len(rows) == count, table
        assert all(" ± " in row for row in rows if not row.startswith("| **")), table


def test_tfidf_baseline_learns_the_cue_words_of_the_model_splits(tmp_path, monkeypatch):
    """Each written category has its own cue words: a baseline that reads the right texts with
    their own labels gets them all; one reading shuffled labels would not."""
    write_fortunes(tmp_path / "fortunes", per_category=(30, 30, 30))
    monkeypatch.chdir(tmp_path)
    results = load_script("results")
    data = ["data=fortunes", f"data.root={tmp_path / 'fortunes'}", "data.num_classes=3", "data.min_quotations=1"]
    assert results.tfidf_baseline(data, quick=True) >= 0.9
