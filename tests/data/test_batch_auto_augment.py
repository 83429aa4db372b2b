"""TrivialAugmentWide, RandAugment and AutoAugment on whole batches (data/batch_auto_augment.py):
every operation's pixels are torchvision's for the same operation and magnitude, and the draws
are the transform's own, per image."""

from __future__ import annotations

import pickle
from collections import Counter

import pytest
import torch
from torchvision.transforms import v2

from bigmodel_cli.data.batch_augment import BatchAugment
from bigmodel_cli.data.batch_auto_augment import BatchedAutoAugment, magnitude_table

TRANSFORMS = {
    "trivialaugment": lambda: v2.TrivialAugmentWide(),
    "randaugment": lambda: v2.RandAugment(),
    "autoaugment": lambda: v2.AutoAugment(),
    "trivialaugment bilinear fill": lambda: v2.TrivialAugmentWide(interpolation=v2.InterpolationMode.BILINEAR, fill=90),
}


def every_draw(transform, height: int, width: int) -> list[tuple[int, str, float]]:
    """(index, name, magnitude) for every magnitude each operation of the transform can take."""
    batched = BatchedAutoAugment(transform)
    bins = 10 if isinstance(transform, v2.AutoAugment) else transform.num_magnitude_bins
    draws = []
    for index, name in enumerate(batched.names):
        table, signed = magnitude_table(type(transform), name, bins, height, width)
        values = [0.0] if table is None else sorted({*table, *(-v for v in table if signed)})
        draws += [(index, name, value) for value in values]
    return draws


@pytest.mark.parametrize("kind", TRANSFORMS)
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 20, 24)], ids=["grey square", "rgb 20x24"])
def test_each_operation_gives_torchvisions_pixels(kind, shape):
    """A batch where image i takes draw i (every operation at every magnitude it can take, shuffled),
    against the transform's own operation on that image alone."""
    torch.manual_seed(0)
    transform = TRANSFORMS[kind]()
    draws = every_draw(transform, *shape[1:])
    draws = [draws[i] for i in torch.randperm(len(draws)).tolist()]
    images = torch.randint(0, 256, (len(draws), *shape), dtype=torch.uint8)
    images[::3, :, :4] = 0  # some flat regions and extremes, for autocontrast, equalize and solarize
    images[1::3, :, -3:] = 255
    got = BatchedAutoAugment(transform).apply(images, torch.tensor([i for i, _, _ in draws]), [m for _, _, m in draws])
    for image, result, (_, name, magnitude) in zip(images, got, draws, strict=True):
        expected = transform._apply_image_or_video_transform(
            image, name, magnitude, interpolation=transform.interpolation, fill=transform._fill
        )
        assert torch.equal(result, expected), f"{name} at {magnitude}"
    assert {name for _, name, _ in draws} == set(type(transform)._AUGMENTATION_SPACE)


def test_trivialaugment_draws_an_operation_and_bin_per_image():
    torch.manual_seed(0)
    transform = v2.TrivialAugmentWide()
    batched = BatchedAutoAugment(transform)
    ((ops, magnitudes),) = batched.draws(28_000, 28, 28)
    counts = Counter(ops.tolist())
    assert len(counts) == len(batched.names) and all(abs(c - 2000) < 4 * 2000**0.5 for c in counts.values())
    rotations = [m for op, m in zip(ops.tolist(), magnitudes) if batched.names[op] == "Rotate"]
    table, _ = magnitude_table(v2.TrivialAugmentWide, "Rotate", 31, 28, 28)
    assert {abs(m) for m in rotations} == set(table)  # every bin drawn
    assert 0.45 < sum(m < 0 for m in rotations) / sum(m != 0 for m in rotations) < 0.55  # half negated


def test_randaugment_applies_num_ops_operations_at_its_magnitude():
    torch.manual_seed(0)
    transform = v2.RandAugment(num_ops=3, magnitude=5)
    batched = BatchedAutoAugment(transform)
    rounds = batched.draws(2000, 28, 28)
    assert len(rounds) == 3
    for ops, magnitudes in rounds:
        for op, magnitude in zip(ops.tolist(), magnitudes):
            table, _ = magnitude_table(v2.RandAugment, batched.names[op], 31, 28, 28)
            assert abs(magnitude) == (0.0 if table is None else table[5])


def test_autoaugment_takes_each_policy_step_with_its_probability():
    torch.manual_seed(0)
    transform = v2.AutoAugment()
    batched = BatchedAutoAugment(transform)
    count = 20_000
    rounds = batched.draws(count, 28, 28)
    for step, (ops, _) in enumerate(rounds):
        names = Counter(batched.names[op] for op in ops.tolist() if op >= 0)
        policies = transform._policies
        expected = Counter()
        for policy in policies:
            name, probability, _ = policy[step]
            expected[name] += probability * count / len(policies)
        for name, mean in expected.items():
            assert abs(names[name] - mean) < 5 * mean**0.5 + 5, (step, name, names[name], mean)


def test_the_tensor_path_batches_them_and_pickles_them():
    """BatchAugment picks the batched form (ddp_spawn pickles the data module that holds it), and it
    changes as many images as the transform does image by image (Identity, a grey image's Color,
    the magnitude-0 bins and 8-bit Posterize leave some alone)."""
    torch.manual_seed(0)
    transform = v2.TrivialAugmentWide()
    augment = BatchAugment([transform])
    assert isinstance(augment.ops[0], BatchedAutoAugment)
    augment = pickle.loads(pickle.dumps(augment))
    images = torch.randint(0, 256, (2000, 1, 28, 28), dtype=torch.uint8)
    out = augment(images)
    assert out.shape == images.shape and out.dtype == torch.uint8
    per_image = torch.stack([transform(image) for image in images])
    changed, expected = ((x != images).flatten(1).any(1).float().mean() for x in (out, per_image))
    assert abs(changed - expected) < 0.04 and 0.5 < expected < 0.95
