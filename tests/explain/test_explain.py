"""bigmodel explain: on a trained digits model, deleting the most-attributed pixels first lowers
the predicted class's probability faster than deleting random ones (the gradient methods and
occlusion); the picture is written; text models get highlighted tokens; misuse is one line."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "gradient_shap", "occlusion"])
def test_attributions_are_faithful_on_a_trained_digits_model(method, digits_run, cli):
    code, out, err = cli("explain", f"ckpt_path={digits_run}/checkpoints/best.ckpt", f"method={method}", "samples=6")
    assert code == 0, err
    row = next(r for r in json.loads((digits_run / "explain" / "explain.json").read_text()) if r["method"] == method)
    assert row["samples"] == 6
    # Faithful: clearly below the random order's area (1.0 would be no better than chance).
    assert row["deletion_auc"] < 0.8 * row["random_auc"], row
    with Image.open(digits_run / "explain" / f"{method}.png") as picture:
        width, height = picture.size
    assert height > 2.5 * width  # six rows of (input, heatmap), two pictures wide
    assert f"| {method} | 6 |" in (digits_run / "explain" / "explain.md").read_text()


def test_lime_and_kernel_shap_are_faithful_on_digits(digits_run, cli):
    """On 8x8 digits a patch is one pixel; patches of several pixels (and sides they do not
    divide) are test_perturbation_methods_cover_images_whose_side_the_patches_do_not_divide."""
    for method in ("lime", "kernel_shap"):
        code, _, err = cli(
            "explain", f"ckpt_path={digits_run}/checkpoints/best.ckpt", f"method={method}", "samples=2", "steps=8"
        )
        assert code == 0, err
    rows = {r["method"]: r for r in json.loads((digits_run / "explain" / "explain.json").read_text())}
    assert rows["lime"]["deletion_auc"] < rows["lime"]["random_auc"]
    assert rows["kernel_shap"]["deletion_auc"] < rows["kernel_shap"]["random_auc"]


def test_text_attributions_highlight_the_cue_words(cli, in_tmp_cwd):
    from tests.support.data_files import NEGATIVE, POSITIVE, write_text_table

    table = in_tmp_cwd / "reviews.csv"
    write_text_table(table, rows=400)
    data = ["data=text_csv", f"data.path={table}", "data.num_classes=2"]
    code, _, err = cli("train", "model=transformer", *data, "trainer.max_epochs=4", "run_name=text")
    assert code == 0, err
    checkpoint = in_tmp_cwd / "outputs" / "train" / "text" / "checkpoints" / "best.ckpt"
    code, out, err = cli("explain", f"ckpt_path={checkpoint}", "method=integrated_gradients", "samples=4")
    assert code == 0, err
    page = (checkpoint.parent.parent / "explain" / "integrated_gradients.html").read_text()
    paragraphs = highlighted(page)
    assert len(paragraphs) == 4
    cues = set(POSITIVE + NEGATIVE)
    assert all(cues & {t for t, _, _ in tokens} for tokens in paragraphs)  # each sample has its cue words
    # The strongest colour of a sample is on a cue word (nonzero), in all but at most one sample (the
    # model may read a class from the absence of the other class's cues, which leaves it little to show) ...
    strongest = [max(tokens, key=lambda t: t[2]) for tokens in paragraphs]
    assert sum(t in cues and strength > 0 and score != 0 for t, score, strength in strongest) >= 3, strongest
    # ... and over the page the cue words are coloured far more strongly than the filler.
    cue = [s for tokens in paragraphs for t, _, s in tokens if t in cues]
    filler = [s for tokens in paragraphs for t, _, s in tokens if t not in cues]
    assert sum(cue) / len(cue) > 2 * sum(filler) / len(filler), paragraphs
    row = json.loads((checkpoint.parent.parent / "explain" / "explain.json").read_text())[0]
    assert row["deletion_auc"] < row["random_auc"]
    assert sum(f"pred {p}" in out for p in (0, 1)) >= 1 and all(t in out for t, _, _ in paragraphs[0])


def highlighted(page: str) -> list[list[tuple[str, float, int]]]:
    """Each paragraph's (token, score, colour strength 0..255) from the HTML: the strength is how far
    the background is from white."""
    import re

    out = []
    for paragraph in re.findall(r"<p [^>]*>(.*?)</p>", page, flags=re.S):
        spans = re.findall(
            r"<span style='background: rgb\((\d+), (\d+), (\d+)\)' title='([^']*)'>([^<]*)</span>", paragraph
        )
        out.append([(token, float(score), 255 - min(int(r), int(g), int(b))) for r, g, b, score, token in spans])
    return out


def test_explain_errors_are_one_line(digits_run, cli):
    code, _, err = cli("explain", f"ckpt_path={digits_run}/checkpoints/best.ckpt", "method=grad_cam")
    assert code == 2 and "method=grad_cam" in err and "integrated_gradients" in err and "Traceback" not in err


def test_explain_on_images_without_matplotlib_is_one_line(digits_run, cli, monkeypatch):
    """The PNG grid is the product: without the plots extra, one line and exit 2, nothing written."""
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # importing it now raises ImportError
    before = snapshot(digits_run / "explain")
    code, _, err = cli("explain", f"ckpt_path={digits_run}/checkpoints/best.ckpt", "method=saliency", "samples=2")
    assert code == 2 and "Traceback" not in err, err
    assert "bigmodel explain on images (its PNG grid) needs matplotlib, which is not installed" in err
    assert "pip install 'bigmodel-cli[plots]'" in err
    assert snapshot(digits_run / "explain") == before


class CornerPixel(torch.nn.Module):
    """Two logits; the first is the bottom-right pixel (summed over channels), the second 0."""

    def forward(self, x):
        corner = x[:, :, -1, -1].sum(1)
        return torch.stack([corner, torch.zeros_like(corner)], 1)


@pytest.mark.parametrize("side", [28, 30, 32])
@pytest.mark.parametrize("method", ["lime", "kernel_shap", "occlusion"])
def test_perturbation_methods_cover_images_whose_side_the_patches_do_not_divide(method, side):
    """28x28 (patches of 4), 30x30 (the last row and column of patches cropped to 2 pixels) and
    32x32: the attribution has the image's shape, is one value per patch, and the one pixel the
    model reads (the bottom-right corner, in the cropped patch when there is one) carries it."""
    from bigmodel_cli.explain.methods import image_attributions, patch_mask

    torch.manual_seed(0)
    x = torch.rand(2, 3, side, side) + 1.0
    baseline = torch.zeros(1, 3, side, side)
    scores = image_attributions(method, CornerPixel(), x, torch.zeros(2, dtype=torch.long), baseline, 8)
    assert scores.shape == x.shape
    mask = patch_mask(side, side)
    patch = 4
    assert mask.max() + 1 == (-(-side // patch)) ** 2 and bool((mask[:patch, :patch] == 0).all())
    per_pixel = scores.sum(1)  # (N, H, W)
    corner = mask[-1, -1]
    for sample in per_pixel:
        for index in mask.unique():
            values = sample[mask == index]
            assert torch.allclose(values, values[0].expand_as(values)), "one value per patch"
        assert float(sample[mask == corner].abs().min()) > 0.1
        assert float(sample[mask != corner].abs().max()) < 0.5 * float(sample[mask == corner].abs().min())


def snapshot(folder) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.is_dir() else {}


def test_counts_of_zero_are_one_line_and_leave_the_table_alone(digits_run, cli):
    """samples=0, steps=0, deletion_steps=0 (which used to write a NaN row over the good one):
    one red line, exit 2, nothing in <run>/explain/ changes."""
    checkpoint = f"ckpt_path={digits_run}/checkpoints/best.ckpt"
    code, _, err = cli("explain", checkpoint, "method=saliency", "samples=2")
    assert code == 0, err
    before = snapshot(digits_run / "explain")
    good = next(r for r in json.loads(before["explain.json"]) if r["method"] == "saliency")
    assert good["deletion_auc"] == good["deletion_auc"]  # a number, not NaN
    for setting in ("samples=0", "steps=0", "deletion_steps=0", "deletion_steps=-3"):
        code, _, err = cli("explain", checkpoint, "method=saliency", setting)
        key = setting.split("=")[0]
        assert code == 2, (setting, err)
        assert len(err.strip().splitlines()) == 1 and setting in err and f"fix: {key}=" in err, err
        assert snapshot(digits_run / "explain") == before, setting
