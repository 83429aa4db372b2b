"""What each augmentation option costs per Fashion-MNIST epoch on the two loader paths.

    python scripts/augment_bench.py [--batches 20] [--threads 1] [--options flip_crop,random_erasing]

For every option of conf/augmentation (the image transforms; mixup and cutmix mix whole batches on
both paths and are left out), it times the train transforms as `bigmodel train data=fashion_mnist
augmentation=<option>` builds them: image by image (data.loader=dataloader, and the tensor path's
fallback for a transform with no batched form) and on whole uint8 batches (data.loader=tensor,
bigmodel_cli.data.batch_augment.BatchAugment). Each time is the median of --repeats passes over
--batches batches of 256 28x28 images, scaled to an epoch of 54,000 images; the last column names
the transforms that still run image by image on the tensor path.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EPOCH_IMAGES, BATCH = 54_000, 256


def option_transforms(option: str) -> list:
    """The image transforms `augmentation=<option>` gives a Fashion-MNIST run, in order."""
    from hydra.utils import instantiate

    from bigmodel_cli.data.batch_augment import is_batch_level

    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    from plain_loop import compose

    cfg = compose(["data=fashion_mnist", f"augmentation={option}"])
    transforms = [t for t in instantiate(cfg.augmentation).values() if t is not None]
    return [t for t in transforms if not is_batch_level(t)]


def epoch_seconds(apply, batches: list, repeats: int) -> float:
    """Median over repeats of the time apply takes over batches, scaled to an epoch."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for images in batches:
            apply(images)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * EPOCH_IMAGES / (BATCH * len(batches))


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20, help="batches of 256 images per pass")
    parser.add_argument("--repeats", type=int, default=3, help="passes; the median is reported")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a data loader worker has 1)")
    parser.add_argument("--options", default=None, help="comma-separated options (default: every image option)")
    args = parser.parse_args(argv)

    import torch
    from torchvision.transforms import v2

    from bigmodel_cli.config.catalogue import conf_dir
    from bigmodel_cli.data.batch_augment import BatchAugment, PerSample

    torch.set_num_threads(args.threads)
    options = (
        args.options.split(",")
        if args.options
        else sorted(p.stem for p in (conf_dir() / "augmentation").glob("*.yaml"))
    )
    generator = torch.Generator().manual_seed(0)
    batches = [
        torch.randint(0, 256, (BATCH, 1, 28, 28), dtype=torch.uint8, generator=generator) for _ in range(args.batches)
    ]
    rows = []
    for option in options:
        transforms = option_transforms(option)
        if not transforms:  # none, and the batch mixers
            continue
        batched = BatchAugment(transforms)
        per_image = PerSample(v2.Compose(transforms))
        rows.append({
            "option": option,
            "per_image": epoch_seconds(per_image, batches, args.repeats),
            "batched": epoch_seconds(batched, batches, args.repeats),
            "still_per_image": [type(t).__name__ for t, op in zip(transforms, batched.ops) if isinstance(op, PerSample)],
        })  # fmt: skip
    print(
        f"Seconds of augmentation per Fashion-MNIST epoch ({EPOCH_IMAGES:,} images, batch {BATCH}, {args.threads} thread(s))\n"
    )
    print("| augmentation= | image by image (dataloader) | whole batches (tensor) | speed-up | still image by image |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['option']} | {r['per_image']:.2f} s | {r['batched']:.2f} s | {r['per_image'] / r['batched']:.1f}x | "
            f"{', '.join(r['still_per_image']) or '-'} |"
        )
    return rows


if __name__ == "__main__":
    main()
