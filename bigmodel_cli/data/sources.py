"""Dataset readers: each returns the splits a dataset ships with, as map-style datasets of
(uint8 CHW image tensor, int label). The DataModule carves the missing splits and transforms.

In-memory datasets come back as `TensorImages` so a batched loader can use the whole tensor.
"""

from __future__ import annotations

import pickle
from functools import partial
from pathlib import Path

import numpy as np
import torch

from bigmodel_cli.data.idx import find_idx, read_idx
from bigmodel_cli.data.tensor_images import TensorImages
from bigmodel_cli.errors import UserError

Splits = dict  # split name ("train", "val", "test") -> Dataset


def digits() -> Splits:
    """The 1,797 8x8 handwritten digits (pixel values 0..16), rescaled to uint8."""
    pixels, labels = _digits_table()
    images = np.rint(pixels.reshape(-1, 1, 8, 8) * (255.0 / 16.0)).astype(np.uint8)
    return {"train": TensorImages(torch.from_numpy(images), torch.from_numpy(labels).long())}


DIGITS_FILE = Path(__file__).resolve().parent / "digits.npz"


def _digits_table() -> tuple[np.ndarray, np.ndarray]:
    """(pixels (N, 64) float64, labels (N,) int64): scikit-learn's load_digits values, from the copy
    in this package (scripts/write_digits.py wrote it). Numpy reads it in ~2 ms; scikit-learn is not
    needed, and importing sklearn.datasets (scipy and all) took 0.8 s of a short run."""
    with np.load(DIGITS_FILE) as table:
        return table["pixels"].astype(np.float64), table["labels"].astype(np.int64)


def synthetic(
    train_samples: int, test_samples: int, num_classes: int, in_channels: int, image_size: int, noise: float, seed: int
) -> Splits:
    """Each class is a random prototype image; samples are the prototype plus Gaussian noise."""
    generator = torch.Generator().manual_seed(seed)
    prototypes = torch.rand(num_classes, in_channels, image_size, image_size, generator=generator) * 255

    def draw(count: int) -> TensorImages:
        labels = torch.randint(num_classes, (count,), generator=generator)
        pixels = prototypes[labels] + noise * torch.randn(
            count, in_channels, image_size, image_size, generator=generator
        )
        return TensorImages(pixels.clamp(0, 255).round().to(torch.uint8), labels)

    return {"train": draw(train_samples), "test": draw(test_samples)}


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _idx_dataset(name: str, torchvision_class: str, root: str, download: bool, system_dirs: list[str]) -> Splits:
    raw = Path(root) / torchvision_class / "raw"
    directories = [raw, *map(Path, system_dirs)]
    if find_idx(directories, _IDX_FILES["train"][0]) is None and download:
        _download(torchvision_class, root)
    splits = {}
    for split, (images_stem, labels_stem) in _IDX_FILES.items():
        images_path, labels_path = find_idx(directories, images_stem), find_idx(directories, labels_stem)
        if images_path is None or labels_path is None:
            looked = " or ".join(str(d) for d in directories)
            raise UserError(
                f"{name} files not found ({images_stem}[.gz], {labels_stem}[.gz]) in {looked}; "
                f"fix: put them in {raw}, or run with data.download=true where there is network"
                + (", or `apt-get install dataset-fashion-mnist`" if name == "Fashion-MNIST" else "")
            )
        images, labels = read_idx(images_path), read_idx(labels_path)
        splits[split] = TensorImages(
            torch.from_numpy(images.copy())[:, None], torch.from_numpy(labels.astype(np.int64))
        )
    return splits


def mnist(root: str, download: bool) -> Splits:
    return _idx_dataset("MNIST", "MNIST", root, download, [])


def fashion_mnist(root: str, download: bool, system_dirs: list[str]) -> Splits:
    return _idx_dataset("Fashion-MNIST", "FashionMNIST", root, download, list(system_dirs))


def _download(torchvision_class: str, root: str) -> None:
    """Fetch a dataset with torchvision's own downloader, turning a failure into advice."""
    import torchvision.datasets

    try:
        getattr(torchvision.datasets, torchvision_class)(root, train=True, download=True)
        getattr(torchvision.datasets, torchvision_class)(root, train=False, download=True)
    except Exception as exc:  # noqa: BLE001 - any network or archive failure means the same to the user
        raise UserError(
            f"could not download {torchvision_class} into {root} ({type(exc).__name__}: {exc}); "
            f"fix: copy the dataset's files there by hand and run with data.download=false"
        ) from None


_CIFAR = {
    10: ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels", "CIFAR10"),
    100: ("cifar-100-python", ["train"], ["test"], b"fine_labels", "CIFAR100"),
}


def cifar(root: str, download: bool, classes: int) -> Splits:
    """CIFAR-10/100 from the python-pickle batches torchvision downloads, unpickled with only
    numpy's array reconstruction allowed (read_cifar_batch): a batch file cannot run code."""
    folder, train_files, test_files, label_key, torchvision_class = _CIFAR[classes]
    base = Path(root) / folder
    if not base.is_dir() and download:
        _download(torchvision_class, root)
    splits = {}
    for split, files in (("train", train_files), ("test", test_files)):
        images, labels = [], []
        for name in files:
            path = base / name
            if not path.is_file():
                raise UserError(
                    f"CIFAR-{classes} file {path} not found; fix: extract the python version of "
                    f"the dataset into {base}, or run with data.download=true where there is network"
                )
            batch = read_cifar_batch(path, classes, label_key)
            images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.append(np.asarray(batch[label_key], dtype=np.int64))
        splits[split] = TensorImages(torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels)))
    return splits


class _ArraysOnly(pickle.Unpickler):
    """Unpickles what a CIFAR batch holds (dicts, lists, bytes, numbers and numpy arrays) and
    refuses every other global: a pickle can name any callable (os.system, ...) and have it called."""

    def find_class(self, module: str, name: str):
        allowed = _CIFAR_GLOBALS.get((module, name))
        if allowed is None:
            raise _RefusedGlobal(f"{module}.{name}")
        return allowed()


class _RefusedGlobal(pickle.UnpicklingError):
    pass


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """What a protocol-2 pickle written by Python 3 calls to rebuild bytes (`_codecs.encode`)."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise _RefusedGlobal(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1", errors)


def _numpy_core(module: str, name: str):
    def load():
        import importlib

        try:
            return getattr(importlib.import_module(f"numpy._core.{module}"), name)
        except ImportError:  # numpy 1.x
            return getattr(importlib.import_module(f"numpy.core.{module}"), name)

    return load


# (module, name) a CIFAR batch may name -> the object it means. The real files (Python 2, numpy 1)
# name numpy.core.*; files pickled by numpy 2 name numpy._core.*.
_CIFAR_GLOBALS = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: _latin1_encode,
    **{
        (f"{package}.{module}", name): _numpy_core(module, name)
        for package in ("numpy.core", "numpy._core")
        for module, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer"))
    },
}


def read_cifar_batch(path: Path, classes: int, label_key: bytes) -> dict:
    """A CIFAR python batch (a pickled dict of numpy arrays), unpickled with nothing but numpy's
    array reconstruction allowed: a file that names anything else is refused before it runs."""
    try:
        with open(path, "rb") as f:
            batch = _ArraysOnly(f, encoding="bytes").load()
    except _RefusedGlobal as exc:
        raise UserError(
            f"CIFAR-{classes} file {path} is not a plain CIFAR batch: it asks to call {exc}, and a pickle that "
            f"calls code is refused unread; fix: replace it with the file from the official archive "
            f"(cifar-{classes}-python.tar.gz), or delete it and run with data.download=true"
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise UserError(
            f"CIFAR-{classes} file {path} cannot be read as a CIFAR batch ({type(exc).__name__}: {exc}); "
            f"fix: replace it with the file from the official archive, or delete it and run with data.download=true"
        ) from None
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        raise UserError(
            f"CIFAR-{classes} file {path} holds no CIFAR batch (a dict of b'data' and {label_key!r}); "
            f"fix: replace it with the file from the official archive"
        )
    return batch


def image_folder(root: str, image_size: int, in_channels: int) -> Splits:
    """root/train/<class>/<image> (and optional val/, test/) read with torchvision's ImageFolder."""
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    base = Path(root)
    if not (base / "train").is_dir():
        raise UserError(
            f"no train/ folder in data.root={root}; fix: lay the images out as "
            f"{root}/train/<class>/<image>.jpg (val/ and test/ optional) or set data.root"
        )
    mode = {1: "L", 3: "RGB"}.get(in_channels)
    if mode is None:
        raise UserError(f"data.in_channels={in_channels} is not supported for image folders; valid choices: 1, 3")
    to_tensor = v2.Compose([v2.ToImage(), v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size)])
    classes = None
    splits = {}
    for split in ("train", "val", "test"):
        if (base / split).is_dir():
            dataset = ImageFolder(str(base / split), loader=partial(_open_image, mode=mode), transform=to_tensor)
            if classes is not None and dataset.classes != classes:
                raise UserError(
                    f"{base / split} has class folders {dataset.classes} but train/ has {classes}; "
                    f"fix: give every split the same class folders"
                )
            classes = dataset.classes
            splits[split] = dataset
    return splits


def _open_image(path: str, mode: str):
    from PIL import Image

    with Image.open(path) as image:
        return image.convert(mode)
