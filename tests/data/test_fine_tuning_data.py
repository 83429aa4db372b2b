"""The data settings fine-tuning needs: a seeded, stratified fraction of the training labels (val
and test untouched), and images converted to the size and channels a pretrained model reads."""

from __future__ import annotations

import torch

from bigmodel_cli.data.tensor_images import convert_images
from bigmodel_cli.training.pieces import allowed, build_datamodule


def datamodule(compose_cfg, overrides):
    with compose_cfg("train", overrides) as cfg:
        data = build_datamodule(cfg.data, allowed(cfg))
    data.setup("fit")
    return data


def test_train_fraction_keeps_a_stratified_seeded_part_of_train_only(compose_cfg):
    full = datamodule(compose_cfg, [])
    tenth = datamodule(compose_cfg, ["data.train_fraction=0.1"])
    again = datamodule(compose_cfg, ["data.train_fraction=0.1", "seed=99"])
    for split in ("val", "test"):
        assert torch.equal(full.datasets[split].labels, tenth.datasets[split].labels)
    counts_full = torch.bincount(full.datasets["train"].labels, minlength=10)
    counts_tenth = torch.bincount(tenth.datasets["train"].labels, minlength=10)
    assert torch.equal(counts_tenth, (counts_full.double() * 0.1).round().clamp(min=1).long())  # per class
    # The same labeled subset whatever the run's seed (it follows data.split_seed), a subset of train.
    assert torch.equal(tenth.datasets["train"].images, again.datasets["train"].images)
    rows = {bytes(image.flatten().tolist()) for image in full.datasets["train"].images}
    assert all(bytes(image.flatten().tolist()) in rows for image in tenth.datasets["train"].images)


def test_image_size_and_in_channels_convert_the_images(compose_cfg):
    native = datamodule(compose_cfg, [])
    big_rgb = datamodule(
        compose_cfg, ["data.image_size=28", "data.in_channels=3", "data.mean=[0.3,0.3,0.3]", "data.std=[0.4,0.4,0.4]"]
    )
    images = big_rgb.datasets["train"].images
    assert images.shape[1:] == (3, 28, 28) and images.dtype == torch.uint8
    assert torch.equal(images[:, 0], images[:, 2])  # grey copied to each channel
    # Resizing keeps the picture: shrunk back to 8x8 it is far closer to its own original than to others.
    back = convert_images(images[:, :1], 1, 8).float()
    original = native.datasets["train"].images.float()
    own = (back - original).abs().mean()
    others = (back - original.roll(1, dims=0)).abs().mean()
    assert own < 0.5 * others, (own, others)
    grey = convert_images(images, 1, 28)
    assert torch.equal(grey, images[:, :1])  # RGB of equal channels -> the same grey


def test_train_fraction_of_text_labels(compose_cfg, tmp_path):
    rows = [(f"sample {i} about {'cats' if i % 4 else 'dogs'} number {i}", "a" if i % 4 else "b") for i in range(400)]
    path = tmp_path / "labeled.csv"
    path.write_text("text,label\n" + "\n".join(f"{t},{label}" for t, label in rows) + "\n")
    common = ["data=text_csv", f"data.path={path}"]
    full = datamodule(compose_cfg, common)
    half = datamodule(compose_cfg, [*common, "data.train_fraction=0.5"])

    def labels(data, split):
        return torch.tensor([int(data.datasets[split][i][1]) for i in range(len(data.datasets[split]))])

    for split in ("val", "test"):
        assert torch.equal(labels(full, split), labels(half, split))
    counts = torch.bincount(labels(full, "train"))
    assert torch.equal(torch.bincount(labels(half, "train")), (counts.double() * 0.5).round().long())
