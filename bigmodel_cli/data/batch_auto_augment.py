"""TrivialAugmentWide, RandAugment and AutoAugment on whole uint8 batches.

torchvision's v2 transforms draw one operation and magnitude per call, so on a batch tensor every
image would get the same one; run image by image they cost about 0.3 ms an image, which made
`augmentation=trivialaugment` several times slower than the training step on the tensor path. Here
every image draws its own operations from the transform's own space (its `_AUGMENTATION_SPACE`,
magnitude bins, policies), as the transform would one image at a time, and each operation then
runs once per batch:
- the geometric ones (shear, translate, rotate) as one affine resampling with a matrix per image,
  in torchvision's pixel-centre convention, nearest or bilinear, and its fill;
- the others through torchvision's own functional op, once per distinct magnitude among the
  images that drew it (a few dozen calls a batch), so their pixels are torchvision's.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
# Every operation BatchedAutoAugment.op can run (a torchvision that adds one falls back to per image).
KNOWN = {"Identity", *GEOMETRIC, "Brightness", "Color", "Contrast", "Sharpness", "Posterize", "Solarize",
         "AutoContrast", "Equalize", "Invert"}  # fmt: skip


def supports(transform) -> bool:
    from torchvision.transforms import InterpolationMode, v2

    kinds = (v2.TrivialAugmentWide, v2.RandAugment, v2.AutoAugment)
    return (
        type(transform) in kinds
        and InterpolationMode(transform.interpolation).value in ("nearest", "bilinear")
        and set(transform._AUGMENTATION_SPACE) <= KNOWN
    )


class BatchedAutoAugment:
    """One of the automatic augmentation transforms, applied to a (B, C, H, W) uint8 batch."""

    def __init__(self, transform):
        from torchvision.transforms import InterpolationMode

        self.transform = transform  # not its space: the space's lambdas would not pickle (ddp_spawn)
        self.names = list(transform._AUGMENTATION_SPACE)
        self.mode = InterpolationMode(transform.interpolation).value
        fill = transform.fill
        self.fill = None if fill is None else float(next(iter(fill.values())) if isinstance(fill, dict) else fill)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        for ops, magnitudes in self.draws(images.shape[0], *images.shape[-2:]):
            images = self.apply(images, ops, magnitudes)
        return images

    # --- the draws: per image, what the transform draws per call ------------------------------------

    def draws(self, n: int, height: int, width: int) -> list[tuple[torch.Tensor, list[float]]]:
        """Rounds of (operation index per image, magnitude per image); index -1 leaves an image alone."""
        from torchvision.transforms import v2

        t = self.transform
        if isinstance(t, v2.TrivialAugmentWide):
            ops = torch.randint(len(self.names), (n,))
            return [
                self.magnitudes(ops, torch.randint(t.num_magnitude_bins, (n,)), t.num_magnitude_bins, height, width)
            ]
        if isinstance(t, v2.RandAugment):
            rounds = []
            for _ in range(t.num_ops):
                ops = torch.randint(len(self.names), (n,))
                rounds.append(self.magnitudes(ops, torch.full((n,), t.magnitude), t.num_magnitude_bins, height, width))
            return rounds
        # AutoAugment: a policy per image, then each of its two steps with that step's probability.
        policies = torch.randint(len(t._policies), (n,)).tolist()
        rounds = []
        for step in range(2):
            chosen = [t._policies[p][step] for p in policies]
            taken = torch.rand(n) <= torch.tensor([probability for _, probability, _ in chosen])
            ops = torch.tensor([self.names.index(name) for name, _, _ in chosen])
            bins = torch.tensor([index if index is not None else 0 for _, _, index in chosen])
            ops, magnitudes = self.magnitudes(ops, bins, 10, height, width)
            rounds.append((torch.where(taken, ops, -1), magnitudes))
        return rounds

    def magnitudes(self, ops, bins, num_bins: int, height: int, width: int) -> tuple[torch.Tensor, list[float]]:
        """Each image's magnitude: its bin of the operation's range, negated half the time if signed."""
        negate = (torch.rand(len(ops)) <= 0.5).tolist()
        values = []
        for op, index, flip in zip(ops.tolist(), bins.tolist(), negate):
            table, signed = magnitude_table(type(self.transform), self.names[op], num_bins, height, width)
            value = 0.0 if table is None else table[index]
            values.append(-value if signed and flip and table is not None else value)
        return ops, values

    # --- the operations -------------------------------------------------------------------------------

    def apply(self, images: torch.Tensor, ops: torch.Tensor, magnitudes: list[float]) -> torch.Tensor:
        images = images.clone()
        geometric: list[tuple[int, str, float]] = []
        by_value: dict[tuple[str, float], list[int]] = {}
        for i, (op, magnitude) in enumerate(zip(ops.tolist(), magnitudes)):
            if op < 0 or self.names[op] == "Identity":
                continue
            name = self.names[op]
            if name in GEOMETRIC and not (name == "Rotate" and magnitude % 90 == 0):
                geometric.append((i, name, magnitude))
            else:  # right angles: torchvision rotates by transposing, not resampling
                by_value.setdefault((name, magnitude), []).append(i)
        if geometric:
            index = torch.tensor([i for i, _, _ in geometric])
            height, width = images.shape[-2:]
            matrices = [inverse_affine(name, magnitude, height, width) for _, name, magnitude in geometric]
            images[index] = affine(images[index], matrices, self.mode, self.fill)
        for (name, magnitude), members in by_value.items():
            index = torch.tensor(members)
            images[index] = self.op(images[index], name, magnitude)
        return images

    def op(self, images: torch.Tensor, name: str, magnitude: float) -> torch.Tensor:
        """torchvision's functional op for a named operation at one magnitude, on a batch."""
        from torchvision.transforms.v2 import functional as TF

        factor = 1.0 + magnitude
        if name == "Rotate":
            return TF.rotate(images, angle=magnitude, interpolation=self.transform.interpolation, fill=self.fill)
        if name == "Brightness":
            return TF.adjust_brightness(images, brightness_factor=factor)
        if name == "Color":
            return TF.adjust_saturation(images, saturation_factor=factor)
        if name == "Contrast":
            return TF.adjust_contrast(images, contrast_factor=factor)
        if name == "Sharpness":
            return TF.adjust_sharpness(images, sharpness_factor=factor)
        if name == "Posterize":
            return TF.posterize(images, bits=int(magnitude))
        if name == "Solarize":
            return TF.solarize(images, threshold=255.0 * magnitude)
        if name == "AutoContrast":
            return TF.autocontrast(images)
        if name == "Equalize":
            return TF.equalize(images)
        return TF.invert(images)  # AutoAugment's Invert: supports() admits no other name


@lru_cache(maxsize=256)
def magnitude_table(kind: type, name: str, num_bins: int, height: int, width: int) -> tuple[list[float] | None, bool]:
    """An operation's magnitude for each bin (None: it takes none), and whether it is signed."""
    make, signed = kind._AUGMENTATION_SPACE[name]
    values = make(num_bins, height, width)
    return (None if values is None else [float(v) for v in values]), signed


@lru_cache(maxsize=4096)
def inverse_affine(name: str, magnitude: float, height: int, width: int) -> tuple[float, ...]:
    """The output-to-input pixel map (a 2x3 matrix, row-major) of a geometric operation, about the
    image centre, as torchvision's affine and rotate build it: shears are about the top-left corner
    (their centre is pixel (0, 0)) by the angle atan(magnitude), translations are whole pixels, and
    a rotation of `magnitude` degrees turns the image counter-clockwise."""
    centre, translate, angle, shear = (0.0, 0.0), (0.0, 0.0), 0.0, (0.0, 0.0)
    if name in ("ShearX", "ShearY"):
        degrees = math.degrees(math.atan(magnitude))
        shear = (degrees, 0.0) if name == "ShearX" else (0.0, degrees)
        centre = (-width * 0.5, -height * 0.5)
    elif name == "TranslateX":
        translate = (float(int(magnitude)), 0.0)
    elif name == "TranslateY":
        translate = (0.0, float(int(magnitude)))
    else:  # Rotate: torchvision's rotate passes the negated angle to the affine map
        angle = -(magnitude % 360)
    rotation, shear_x, shear_y = math.radians(angle), math.radians(shear[0]), math.radians(shear[1])
    # The forward map is rotation-with-shear [[a, b], [c, d]] (determinant 1); its inverse is [[d, -b], [-c, a]].
    a = math.cos(rotation - shear_y) / math.cos(shear_y)
    b = -(a * math.tan(shear_x) + math.sin(rotation))
    c = math.sin(rotation - shear_y) / math.cos(shear_y)
    d = math.cos(rotation) - c * math.tan(shear_x)
    m = [d, -b, 0.0, -c, a, 0.0]
    # Undo the translation and move the centre: C * RSS^-1 * C^-1 * T^-1.
    moved_x, moved_y = centre[0] + translate[0], centre[1] + translate[1]
    m[2] += centre[0] - m[0] * moved_x - m[1] * moved_y
    m[5] += centre[1] - m[3] * moved_x - m[4] * moved_y
    return tuple(m)


def affine(images: torch.Tensor, matrices: list[tuple[float, ...]], mode: str, fill: float | None) -> torch.Tensor:
    """Resample each uint8 image through its own output-to-input matrix (pixel coordinates about the
    centre), outside pixels zero or `fill`, rounded back to uint8."""
    n, channels, height, width = images.shape
    theta = torch.tensor(matrices, dtype=torch.float32, device=images.device).view(n, 2, 3)
    # Output pixel centres about the image centre, mapped, then scaled to grid_sample's [-1, 1].
    xs = torch.linspace((1.0 - width) * 0.5, (width - 1.0) * 0.5, steps=width, device=images.device)
    ys = torch.linspace((1.0 - height) * 0.5, (height - 1.0) * 0.5, steps=height, device=images.device)
    base = torch.empty(1, height, width, 3, device=images.device)
    base[..., 0].copy_(xs)
    base[..., 1].copy_(ys.unsqueeze(-1))
    base[..., 2].fill_(1)
    scale = torch.tensor([0.5 * width, 0.5 * height], device=images.device)
    grid = base.view(1, height * width, 3).expand(n, -1, -1).bmm(theta.transpose(1, 2).div(scale))
    pixels = images.float()
    if fill is not None:  # a ones channel marks which output pixels came from inside the image
        pixels = torch.cat((pixels, torch.ones(n, 1, height, width, device=images.device)), dim=1)
    out = F.grid_sample(pixels, grid.view(n, height, width, 2), mode=mode, padding_mode="zeros", align_corners=False)
    if fill is not None:
        out, inside = out[:, :channels], out[:, channels:]
        if mode == "nearest":
            out = torch.where(inside < 0.5, torch.full_like(out, fill), out)
        else:
            out = (out - fill) * inside + fill
    return out.round().to(images.dtype)
