"""tta=<option>: test and predict score each image by the mean class probability over its views
(the image, its mirror, one-pixel shifts), the validation inside a fit scores the plain image, and
checkpoint commands use the run's own views unless the command line picks others."""

from __future__ import annotations

import csv
import json

import torch

from bigmodel_cli.lightning_modules.test_time import ViewAverage, ViewSettings
from tests.conftest import TWO_EPOCHS, composed


def test_views_are_the_image_its_mirror_and_their_shifts_padded_like_the_crops():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    fill = torch.tensor([-1.0, -2.0, -3.0])
    views = ViewAverage(ViewSettings(flip=True, shift=1), fill).views(x)
    assert len(views) == 10 == ViewSettings(flip=True, shift=1).views_per_image()
    assert torch.equal(views[0], x) and torch.equal(views[1], x.flip(-1))
    edge = fill.view(1, 3, 1).expand(2, 3, 4)
    right, left, down, up = views[2:6]  # of the image itself: shifted right, left, down, up
    assert torch.equal(right[..., 1:], x[..., :-1]) and torch.equal(right[..., 0], edge)
    assert torch.equal(left[..., :-1], x[..., 1:]) and torch.equal(left[..., -1], edge)
    edge = fill.view(1, 3, 1).expand(2, 3, 5)
    assert torch.equal(down[..., 1:, :], x[..., :-1, :]) and torch.equal(down[..., 0, :], edge)
    assert torch.equal(up[..., :-1, :], x[..., 1:, :]) and torch.equal(up[..., -1, :], edge)
    assert torch.equal(views[6][..., 1:], x.flip(-1)[..., :-1])  # the mirror's shifts follow
    assert len(ViewAverage(ViewSettings(flip=True), fill).views(x)) == 2


def by_hand(module, datamodule) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain and view-averaged class probabilities of the test split, computed here with rolls and
    masks (not the code under test): the mirror, and each one-pixel shift with a zero pixel's
    normalised value coming in at the edge."""
    fill = (-datamodule.mean / datamodule.std).view(1, -1, 1, 1)
    plain, averaged = [], []
    module.eval()
    with torch.no_grad():
        for batch in datamodule.test_dataloader():
            x, _ = datamodule.on_after_batch_transfer(batch, 0)
            views = []
            for image in (x, x.flip(-1)):
                views.append(image)
                for step, dim in ((1, -1), (-1, -1), (1, -2), (-1, -2)):
                    rolled = image.roll(step, dims=dim).clone()
                    edge = [slice(None)] * 4
                    edge[dim] = 0 if step > 0 else -1
                    rolled[tuple(edge)] = fill.expand_as(rolled)[tuple(edge)]
                    views.append(rolled)
            probabilities = [torch.softmax(module(view), -1) for view in views]
            plain.append(probabilities[0])
            averaged.append(torch.stack(probabilities).mean(0))
    return torch.cat(plain), torch.cat(averaged)


def predicted(run_dir) -> torch.Tensor:
    with open(run_dir / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    return torch.tensor([[float(v) for k, v in row.items() if k.startswith("prob_")] for row in rows])


def test_test_and_predict_average_the_views_and_validation_in_the_fit_does_not(tmp_path, cli):
    from bigmodel_cli.commands import train
    from bigmodel_cli.training.restore import restore

    metrics = {}
    for tta in ("none", "flip_shift"):
        with composed("train", [*TWO_EPOCHS, f"tta={tta}"], tmp_path / tta) as cfg:
            train.main(cfg)
        metrics[tta] = json.loads((tmp_path / tta / "metrics.json").read_text())
    # The same fit: validation (checkpoint choice, early stopping) scored the plain images ...
    assert {k: v for k, v in metrics["none"].items() if not k.startswith("test/")} == {
        k: v for k, v in metrics["flip_shift"].items() if not k.startswith("test/")
    }
    # ... and the test after it scored the views.
    assert metrics["none"]["test/loss"] != metrics["flip_shift"]["test/loss"]

    checkpoint = tmp_path / "flip_shift" / "checkpoints" / "best.ckpt"
    with composed("test", [f"ckpt_path={checkpoint}"], tmp_path / "restored") as cfg:
        module, datamodule = restore(cfg)
    datamodule.setup("test")
    plain, averaged = by_hand(module, datamodule)
    assert not torch.allclose(plain, averaged, atol=1e-3)

    # predict uses the run's own views; tta=none on its command line scores the plain images.
    code, _, _ = cli("predict", f"ckpt_path={checkpoint}", "paths.output_dir=run_views")
    assert code == 0
    assert torch.allclose(predicted(tmp_path / "run_views"), averaged, atol=2e-6)
    code, _, _ = cli("predict", f"ckpt_path={checkpoint}", "tta=none", "paths.output_dir=plain")
    assert code == 0
    assert torch.allclose(predicted(tmp_path / "plain"), plain, atol=2e-6)
    # The test after the fit (limit_test_batches=2) reported the averaged prediction's accuracy.
    batches = [y for _, y in datamodule.test_dataloader()][:2]
    labels = torch.cat(batches)
    accuracy = (averaged[: len(labels)].argmax(-1) == labels).float().mean().item()
    assert abs(metrics["flip_shift"]["test/acc"] - accuracy) < 1e-6
