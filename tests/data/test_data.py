"""Dataset readers on files in each dataset's real format, seeded splits, and clear errors."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pytest
import torch

from bigmodel_cli.data import sources
from bigmodel_cli.data.image import ImageDataModule
from bigmodel_cli.data.splits import split_off
from bigmodel_cli.data.tensor_images import TensorImages
from bigmodel_cli.errors import UserError
from tests.support.data_files import write_cifar, write_image_folder, write_mnist_like

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def module(source, **kwargs) -> ImageDataModule:
    settings = dict(num_classes=10, in_channels=1, image_size=8, mean=[0.5], std=[0.5], batch_size=16, seed=3)
    settings.update(kwargs)
    return ImageDataModule(source, **settings)


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_idx_files(tmp_path, compress):
    write_mnist_like(tmp_path / "MNIST" / "raw", train=50, test=20, compress=compress)
    splits = sources.mnist(str(tmp_path), download=False)
    assert splits["train"].images.shape == (50, 1, 28, 28) and splits["test"].images.shape == (20, 1, 28, 28)
    assert splits["train"].images.dtype == torch.uint8 and int(splits["train"].labels.max()) < 10


def test_truncated_idx_file_is_a_clear_error(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_mnist_like(raw, compress=False)
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(UserError, match="truncated"):
        sources.mnist(str(tmp_path), download=False)


def test_missing_files_name_where_to_put_them(tmp_path):
    with pytest.raises(UserError, match=str(tmp_path / "FashionMNIST" / "raw")):
        sources.fashion_mnist(str(tmp_path), download=False, system_dirs=[str(tmp_path / "nowhere")])


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_fashion_mnist_from_the_debian_package(tmp_path):
    splits = sources.fashion_mnist(str(tmp_path), download=False, system_dirs=[str(DEBIAN_FASHION)])
    assert splits["train"].images.shape == (60000, 1, 28, 28)
    assert splits["test"].images.shape == (10000, 1, 28, 28)
    assert torch.bincount(splits["test"].labels).tolist() == [1000] * 10


@pytest.mark.parametrize("classes", [10, 100])
def test_cifar_batches(tmp_path, classes):
    write_cifar(tmp_path, classes, per_file=8)
    splits = sources.cifar(str(tmp_path), download=False, classes=classes)
    train_files = 5 if classes == 10 else 1
    assert splits["train"].images.shape == (8 * train_files, 3, 32, 32)
    assert splits["test"].images.shape == (8, 3, 32, 32)


def write_batch(path: Path, batch, protocol: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=protocol)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_batches_in_the_real_layout_load_without_unpickling_code(tmp_path, protocol):
    """The official files' dict (batch_label, labels, data, filenames), pickled at protocol 2 (as
    the Python 2 originals), 4 and 5 (numpy's out-of-band-capable form): read, pixels intact."""
    import numpy as np

    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-py"
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (4, 3 * 32 * 32), dtype=np.uint8)
        labels = rng.integers(0, 10, 4).tolist()
        written[name] = (data, labels)
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data, b"filenames": [b"a.png"] * 4}
        write_batch(folder / name, batch, protocol)
    splits = sources.cifar(str(tmp_path), download=False, classes=10)
    data, labels = written["test_batch"]
    assert torch.equal(splits["test"].images, torch.from_numpy(data.reshape(-1, 3, 32, 32)))
    assert splits["test"].labels.tolist() == labels
    assert splits["train"].images.shape == (20, 3, 32, 32)


class _Planted:
    """A pickle payload: unpickling it calls open(marker, "w"), creating the file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.mark.parametrize("where", ["data", "labels"])
def test_a_cifar_file_that_would_run_code_is_refused_unrun(tmp_path, where):
    write_cifar(tmp_path, 100, per_file=4)
    marker = tmp_path / "planted"
    path = tmp_path / "cifar-100-python" / "train"
    import numpy as np

    batch = {b"data": np.zeros((4, 3072), np.uint8), b"fine_labels": [0, 1, 2, 3]}
    batch[b"data" if where == "data" else b"fine_labels"] = _Planted(marker)
    write_batch(path, batch, 4)
    with pytest.raises(UserError) as refused:
        sources.cifar(str(tmp_path), download=False, classes=100)
    message = str(refused.value)
    assert "\n" not in message and str(path) in message and "open" in message and "refused" in message
    assert not marker.exists()
    # The same file with the standard unpickler does create it: the test's payload is real.
    with open(path, "rb") as f:
        pickle.load(f)
    assert marker.exists()


def test_image_folder_and_class_count_check(tmp_path):
    write_image_folder(tmp_path, per_class=4, size=20)
    dm = module(
        lambda: sources.image_folder(str(tmp_path), image_size=16, in_channels=3),
        num_classes=3,
        in_channels=3,
        image_size=16,
        mean=[0.5] * 3,
        std=[0.5] * 3,
        val_fraction=0.25,
    )
    dm.setup("fit")
    assert set(dm.datasets) == {"train", "val", "test"} and len(dm.datasets["test"]) == 12
    image, label = dm.datasets["train"][0]
    assert image.shape == (3, 16, 16) and image.dtype == torch.uint8
    wrong = module(
        lambda: sources.image_folder(str(tmp_path), image_size=16, in_channels=3),
        num_classes=5,
        in_channels=3,
        image_size=16,
        mean=[0.5] * 3,
        std=[0.5] * 3,
    )
    with pytest.raises(UserError, match="data.num_classes=3"):
        wrong.setup("fit")


def test_splits_are_seeded_and_disjoint():
    images = torch.arange(100, dtype=torch.uint8).view(100, 1, 1, 1).expand(100, 1, 8, 8).contiguous()
    data = TensorImages(images, torch.arange(100) % 10)
    first = split_off(data, 0.2, torch.Generator().manual_seed(7))
    again = split_off(data, 0.2, torch.Generator().manual_seed(7))
    other = split_off(data, 0.2, torch.Generator().manual_seed(8))
    assert torch.equal(first[1].images, again[1].images)
    assert not torch.equal(first[1].images, other[1].images)
    rest, part = (set(d.images[:, 0, 0, 0].tolist()) for d in first)
    assert len(part) == 20 and len(rest) == 80 and not rest & part


def test_digits_are_scikit_learns_digits_without_scikit_learn(monkeypatch):
    """The default data is the package's own copy (scripts/write_digits.py), bit for bit
    scikit-learn's load_digits, read without scikit-learn."""
    import numpy as np

    datasets = pytest.importorskip("sklearn.datasets")
    bunch = datasets.load_digits()
    monkeypatch.setitem(sys.modules, "sklearn", None)  # importing it now raises ImportError
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    pixels, labels = sources._digits_table()
    assert pixels.dtype == bunch.data.dtype and np.array_equal(pixels, bunch.data)
    assert np.array_equal(labels, bunch.target)
    train = sources.digits()["train"]
    assert torch.equal(train.images, torch.from_numpy(np.rint(bunch.images * 255.0 / 16.0).astype(np.uint8))[:, None])
    assert torch.equal(train.labels, torch.from_numpy(bunch.target).long())


def test_digits_file_is_small_and_ships_in_the_package():
    assert sources.DIGITS_FILE.parent == Path(sources.__file__).resolve().parent
    assert sources.DIGITS_FILE.stat().st_size < 100_000
    images = sources.digits()["train"].images
    assert images.shape == (1797, 1, 8, 8) and images.dtype == torch.uint8


def test_shape_mismatch_is_a_clear_error():
    # Size and grey <-> RGB convert (tests/data/test_fine_tuning_data.py); 2 channels from 1 do not.
    dm = module(sources.digits, in_channels=2, mean=[0.5, 0.5], std=[0.5, 0.5])
    with pytest.raises(UserError, match=r"data.in_channels/data.image_size"):
        dm.setup("fit")


def test_batches_are_normalised_on_transfer():
    dm = module(sources.digits, mean=[0.3], std=[0.38])
    dm.setup("fit")
    images, labels = next(iter(dm.train_dataloader()))
    assert images.dtype == torch.uint8
    normalised, same_labels = dm.on_after_batch_transfer((images, labels), 0)
    expected = (images.float() / 255 - 0.3) / 0.38
    assert torch.allclose(normalised, expected) and torch.equal(same_labels, labels)


def test_synthetic_is_learnable_and_seeded():
    a = sources.synthetic(64, 16, num_classes=4, in_channels=3, image_size=8, noise=10.0, seed=1)
    b = sources.synthetic(64, 16, num_classes=4, in_channels=3, image_size=8, noise=10.0, seed=1)
    assert torch.equal(a["train"].images, b["train"].images)
    # Nearest class mean classifies low-noise samples: the classes carry signal.
    x, y = a["train"].images.float().flatten(1), a["train"].labels
    means = torch.stack([x[y == c].mean(0) for c in range(4)])
    assert (torch.cdist(x, means).argmin(1) == y).float().mean() > 0.9


# --- the val/test split is the run's own: data.split_seed, apart from the run's seed ------------------


def split_tensors(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """A split's samples as (inputs, labels) tensors: images as they are, token sequences padded."""
    if isinstance(dataset, TensorImages):
        return dataset.images, dataset.labels
    from bigmodel_cli.data.text import pad_batch

    return pad_batch([dataset[i] for i in range(len(dataset))])


@pytest.mark.parametrize("option", ["digits", "synthetic", "text_csv"])
def test_runs_that_differ_only_in_seed_share_val_and_test(option, compose_cfg, tmp_path):
    from bigmodel_cli.training.pieces import build_datamodule
    from tests.support.data_files import write_text_table

    extra = {
        "synthetic": ["data.source.train_samples=200", "data.source.test_samples=50", "data.image_size=8"],
        "text_csv": [f"data.path={tmp_path / 'reviews.csv'}"],
    }.get(option, [])
    write_text_table(tmp_path / "reviews.csv", rows=100)

    def splits(name: str, overrides: list[str]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        with compose_cfg("train", [f"data={option}", *overrides, *extra], name=name) as cfg:
            dm = build_datamodule(cfg.data)
            dm.setup("fit")
        assert dm.seed == cfg.seed  # the shuffle order still follows the run's seed
        return {split: split_tensors(dm.datasets[split]) for split in ("train", "val", "test")}

    first, second = splits("seed1", ["seed=1"]), splits("seed2", ["seed=2"])
    for split in ("train", "val", "test"):
        for a, b in zip(first[split], second[split]):
            assert torch.equal(a, b), f"{option}: the {split} split moved with the run's seed"
    # data.split_seed is what picks the split.
    other = splits("other_split", ["seed=1", "data.split_seed=5"])
    assert not torch.equal(first["val"][0], other["val"][0])


def test_evaluating_a_checkpoint_uses_the_runs_own_test_split(cli, in_tmp_cwd, monkeypatch):
    """`bigmodel test ckpt_path=... data=digits seed=99` after a run with seed=7: exactly the run's
    test images, not images it trained on; overriding the split settings is undone, with a note."""
    from tests.conftest import FAST

    seen = []  # the test split of every datamodule set up, in order
    original_setup = ImageDataModule.setup

    def recording_setup(self, stage=None):
        original_setup(self, stage)
        seen.append((self.datasets["test"].images.clone(), self.datasets["test"].labels.clone()))

    monkeypatch.setattr(ImageDataModule, "setup", recording_setup)
    code, _, err = cli("train", *FAST, "seed=7", "run_name=seven")
    assert code == 0, err
    run_test_images, run_test_labels = seen[-1]
    best = in_tmp_cwd / "outputs" / "train" / "seven" / "checkpoints" / "best.ckpt"

    for extra in ([], ["data.split_seed=5", "data.test_fraction=0.5"]):
        seen.clear()
        code, out, err = cli("test", f"ckpt_path={best}", "data=digits", "seed=99", *extra)
        assert code == 0, err
        test_images, test_labels = seen[-1]
        assert torch.equal(test_images, run_test_images) and torch.equal(test_labels, run_test_labels)
        if extra:
            assert "note: evaluating on the run's own val/test split" in out
            assert "data.split_seed=5 -> 0" in out and "data.test_fraction=0.5 -> 0.2" in out
        else:
            assert "note: evaluating" not in out


def write_files_for(option: str, root: Path) -> int:
    """Dataset files under root in the option's layout; returns the training split's size."""
    if option == "mnist":
        write_mnist_like(root / "MNIST" / "raw", train=40, test=8)
        return 40
    if option == "fashion_mnist":
        write_mnist_like(root / "FashionMNIST" / "raw", train=44, test=8)
        return 44
    write_cifar(root, 10 if option == "cifar10" else 100, per_file=4)
    return 20 if option == "cifar10" else 4


@pytest.mark.parametrize("option", ["mnist", "fashion_mnist", "cifar10", "cifar100"])
def test_data_root_is_where_file_backed_datasets_are_read(option, compose_cfg, tmp_path):
    """data.root=<dir> (as README and the YAML comments say) is where the files are read; its
    default is paths.data_dir."""
    from bigmodel_cli.training.pieces import build_datamodule

    elsewhere = tmp_path / "elsewhere"
    count = write_files_for(option, elsewhere)
    with compose_cfg("train", [f"data={option}", f"data.root={elsewhere}"]) as cfg:
        splits = build_datamodule(cfg.data).source()
    assert len(splits["train"]) == count  # these files, not the Debian package's 60,000 images
    with compose_cfg("train", [f"data={option}"], name="default") as cfg:
        assert cfg.data.root == cfg.paths.data_dir and cfg.data.source.root == cfg.paths.data_dir


@pytest.mark.parametrize("option", ["imdb", "ag_news"])
def test_data_root_holds_the_hugging_face_cache(option, compose_cfg, tmp_path):
    with compose_cfg("train", [f"data={option}", "model=transformer", f"data.root={tmp_path / 'hf'}"]) as cfg:
        assert cfg.data.source.cache_dir == f"{tmp_path / 'hf'}/huggingface"


def test_train_takes_data_root_and_never_suggests_the_refused_key(cli, tmp_path):
    from tests.conftest import FAST

    root = tmp_path / "mine"
    write_mnist_like(root / "MNIST" / "raw", train=64, test=16)
    code, _, err = cli("train", "data=mnist", f"data.root={root}", *FAST, "run_name=mnist")
    assert code == 0, err
    assert (tmp_path / "outputs" / "train" / "mnist" / "checkpoints" / "best.ckpt").is_file()
    # digits reads no files: data.root is unknown there, and the suggestion is not data.root itself.
    code, _, err = cli("train", "data=digits", f"data.root={root}")
    assert code == 2 and "unknown config key 'data.root'" in err and "did you mean data.root?" not in err, err


def test_a_planted_cifar_pickle_through_train_is_one_line_and_never_runs(cli, tmp_path):
    write_cifar(tmp_path / "cifar", 10, per_file=4)
    marker = tmp_path / "planted"
    write_batch(tmp_path / "cifar" / "cifar-10-batches-py" / "test_batch", {b"data": _Planted(marker)}, 2)
    code, _, err = cli("train", "data=cifar10", f"data.root={tmp_path / 'cifar'}", "trainer.max_epochs=1")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "test_batch" in err and "refused" in err, err
    assert not marker.exists()
