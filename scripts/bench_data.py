"""Images/second of the training data path: per-sample torchvision v2 pipeline in a DataLoader
(num_workers 0 and 2) vs the batched tensor path (data.loader=tensor), on Fashion-MNIST sized data.

    python scripts/bench_data.py [--images 20000] [--batch-size 128] [--augmentations flip_crop standard]

Uses the real Fashion-MNIST when it is on disk, else random 28x28 images of the same size. The
augmentations (default: every option of conf/augmentation with image transforms; mixup and cutmix
mix whole batches on both paths) are composed exactly as `bigmodel train` does. Both paths include
the per-batch float conversion and normalisation, and run on the CPU. The last column names the
transforms with no batched form, which the tensor path applies image by image.
"""

from __future__ import annotations

import argparse
import time

import torch


def augmentation(option: str) -> list:
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from bigmodel_cli.config.catalogue import conf_dir
    from bigmodel_cli.config.resolvers import register_resolvers
    from bigmodel_cli.data.batch_augment import is_batch_level

    register_resolvers()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("train", overrides=["data=fashion_mnist", f"augmentation={option}"])
    transforms = [t for t in instantiate(cfg.augmentation).values() if t is not None]
    return [t for t in transforms if not is_batch_level(t)]


def image_options() -> list[str]:
    """The augmentation options that transform single images (not none, mixup or cutmix)."""
    from bigmodel_cli.config.catalogue import conf_dir

    return [
        option
        for option in sorted(p.stem for p in (conf_dir() / "augmentation").glob("*.yaml"))
        if augmentation(option)
    ]


def images(count: int):
    from bigmodel_cli.data.tensor_images import TensorImages

    try:
        from bigmodel_cli.data.sources import fashion_mnist

        train = fashion_mnist("data", False, ["/usr/share/datasets/fashion-mnist"])["train"]
        source = "Fashion-MNIST"
    except Exception:  # noqa: BLE001 - any reason the files are not there
        train = TensorImages(
            torch.randint(0, 256, (60000, 1, 28, 28), dtype=torch.uint8), torch.randint(0, 10, (60000,))
        )
        source = "random 28x28"
    return TensorImages(train.images[:count], train.labels[:count]), source


def normalise(batch: torch.Tensor) -> torch.Tensor:
    return (batch.float().div_(255) - 0.286) / 0.353


def per_sample(data, transforms, batch_size: int, workers: int) -> float:
    from torch.utils.data import DataLoader
    from torchvision.transforms import v2

    from bigmodel_cli.data.image import Transformed

    loader = DataLoader(
        Transformed(data, v2.Compose(transforms)), batch_size=batch_size, shuffle=True, num_workers=workers
    )
    start = time.perf_counter()
    seen = 0
    for x, _ in loader:
        normalise(x)
        seen += len(x)
    return seen / (time.perf_counter() - start)


def batched(data, transforms, batch_size: int) -> float:
    from bigmodel_cli.data.batch_augment import BatchAugment
    from bigmodel_cli.data.tensor_images import TensorLoader

    augment = BatchAugment(transforms)
    loader = TensorLoader(data, batch_size, shuffle=True, seed=0)
    start = time.perf_counter()
    seen = 0
    for x, _ in loader:
        normalise(augment(x))
        seen += len(x)
    return seen / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> list[dict]:
    from bigmodel_cli.data.batch_augment import BatchAugment, PerSample

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--augmentations", nargs="+", default=None, help="options (default: every image option)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads in this process (DataLoader workers use 1 each)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data, source = images(args.images)
    print(f"{len(data)} {source} images, batch {args.batch_size}, torch threads {torch.get_num_threads()}\n")
    print(
        "| augmentation | per-sample, 0 workers | per-sample, 2 workers | batched (tensor) | speed-up vs best per-sample "
        "| image by image on the tensor path |"
    )
    print("|---|---:|---:|---:|---:|---|")
    rows = []
    for option in args.augmentations or image_options():
        transforms = augmentation(option)
        batched(data, transforms, args.batch_size)  # warm-up
        rates = [per_sample(data, transforms, args.batch_size, w) for w in (0, 2)]
        fast = batched(data, transforms, args.batch_size)
        ops = BatchAugment(transforms).ops
        looped = [type(t).__name__ for t, op in zip(transforms, ops, strict=True) if isinstance(op, PerSample)]
        rows.append({"option": option, "per_sample": rates, "batched": fast, "image_by_image": looped})
        print(
            f"| {option} | {rates[0]:,.0f} img/s | {rates[1]:,.0f} img/s | {fast:,.0f} img/s | "
            f"{fast / max(rates):.1f}x | {', '.join(looped) or '-'} |",
            flush=True,
        )
    return rows


if __name__ == "__main__":
    main()
