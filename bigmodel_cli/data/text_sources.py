"""Text dataset readers: each returns the splits a dataset ships with, as (texts, labels) pairs of
plain lists. Labels are whatever the file holds (ints or strings); the DataModule maps them to
class indices and carves the missing splits.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from bigmodel_cli.errors import UserError

TextSplits = dict  # split name -> (list[str], list[label])
FORMATS = {".csv": ",", ".tsv": "\t", ".txt": "\t", ".jsonl": None, ".json": None}


def read_table(path: str | Path, text_column: str, label_column: str) -> tuple[list[str], list]:
    """Rows of a CSV, TSV or JSON-lines file; the text and label columns by name."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data.path={path} does not exist; fix: give a .csv, .tsv or .jsonl file with "
                        f"columns '{text_column}' and '{label_column}'")
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise UserError(f"data.path={path} has suffix '{suffix}'; valid choices: {', '.join(FORMATS)} "
                        f"(fix: rename the file, or convert it to CSV/TSV/JSON lines)")
    with open(path, newline="", encoding="utf-8") as f:
        if FORMATS[suffix] is None:
            rows = [json.loads(line) for line in f if line.strip()]
        else:
            rows = list(csv.DictReader(f, delimiter=FORMATS[suffix]))
    if not rows:
        raise UserError(f"data.path={path} holds no rows; fix: give a file with a header and data rows")
    for column, key in ((text_column, "text_column"), (label_column, "label_column")):
        if column not in rows[0]:
            raise UserError(f"{path} has no column '{column}'; valid choices: {', '.join(map(str, rows[0]))} "
                            f"(fix: data.{key}=<one of them>)")
    return [str(row[text_column]) for row in rows], [row[label_column] for row in rows]


def table(path: str, text_column: str, label_column: str, val_path: str | None = None,
          test_path: str | None = None) -> TextSplits:
    """A local file for training, and optional split files for validation and test."""
    if not path:
        raise UserError(f"data.path is not set; fix: data.path=<file.csv|.tsv|.jsonl> with columns "
                        f"'{text_column}' and '{label_column}' (or data.text_column=/data.label_column=)")
    splits = {"train": read_table(path, text_column, label_column)}
    for split, extra in (("val", val_path), ("test", test_path)):
        if extra:
            splits[split] = read_table(extra, text_column, label_column)
    return splits


def huggingface(name: str, text_column: str, label_column: str, cache_dir: str, path: str | None = None,
                test_path: str | None = None) -> TextSplits:
    """A Hugging Face hub dataset (its train and test splits), or local files in its layout when
    data.path is given (then no network and no `datasets` package are needed)."""
    if path:
        return table(path, text_column, label_column, test_path=test_path)
    try:
        import datasets
    except ImportError:
        raise UserError(f"data={name} needs the Hugging Face `datasets` package, which is not installed; "
                        f"fix: pip install datasets (and have network access once), or give local files with "
                        f"data.path=<train.csv|jsonl> [data.test_path=...]") from None
    try:
        loaded = datasets.load_dataset(name, cache_dir=cache_dir)
    except Exception as exc:  # noqa: BLE001 - offline, hub down, bad name: the same advice
        raise UserError(f"could not load the Hugging Face dataset '{name}' ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:120] if str(exc) else ''}); fix: run once with network access, "
                        f"or give local files with data.path=<train.csv|jsonl>") from None
    names = {"train": "train", "validation": "val", "test": "test"}
    return {ours: (list(loaded[theirs][text_column]), list(loaded[theirs][label_column]))
            for theirs, ours in names.items() if theirs in loaded}
