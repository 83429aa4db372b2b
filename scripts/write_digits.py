"""Writes bigmodel_cli/data/digits.npz, the default dataset, from scikit-learn's bundled copy.

    python scripts/write_digits.py     # needs scikit-learn (pip install scikit-learn); run once

The data: UCI "Optical Recognition of Handwritten Digits" (Alpaydin and Kaynak, 1998; CC BY 4.0),
the 1,797 8x8 images scikit-learn ships as sklearn/datasets/data/digits.csv.gz. The file holds
`pixels` (N, 64) uint8, values 0..16, and `labels` (N,) uint8, in scikit-learn's order, so
`pixels.astype(float64)` and `labels` equal `load_digits().data` and `.target` exactly
(tests/data/test_data.py checks it where scikit-learn is installed). Shipping it in the package
keeps scikit-learn, and the scipy it imports, off the install and the start-up path.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "bigmodel_cli" / "data" / "digits.npz"


def main() -> int:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels, labels = bunch.data, bunch.target
    assert pixels.shape == (1797, 64) and labels.shape == (1797,)
    assert np.array_equal(pixels, np.rint(pixels)) and pixels.min() >= 0 and pixels.max() <= 16
    assert labels.min() >= 0 and labels.max() <= 9
    np.savez_compressed(OUT, pixels=pixels.astype(np.uint8), labels=labels.astype(np.uint8))
    print(f"written: {OUT} ({OUT.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
