"""Reader for the IDX files of MNIST and Fashion-MNIST (plain or gzipped)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from bigmodel_cli.errors import UserError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise UserError(f"{path} is not an IDX file (bad header); delete it and put the original file there")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    array = np.frombuffer(data, dtype=_DTYPES[data[2]], offset=offset)
    expected = int(np.prod(dims))
    if array.size != expected:
        raise UserError(
            f"{path} is truncated: header says {dims} ({expected} values) but it holds {array.size}; "
            f"delete it and put a complete copy there"
        )
    return array.reshape(dims)


def find_idx(directories: list[Path], stem: str) -> Path | None:
    """The first `stem` or `stem.gz` found in the directories, in order."""
    for directory in directories:
        for name in (stem, stem + ".gz"):
            if (directory / name).is_file():
                return directory / name
    return None
