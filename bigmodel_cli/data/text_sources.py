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
