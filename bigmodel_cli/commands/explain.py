"""bigmodel explain: attributions of a checkpoint's predictions on its run's test samples, drawn
(PNG grid or highlighted tokens) and checked for faithfulness by deletion."""

from __future__ import annotations

import time

import torch
from omegaconf import DictConfig

from bigmodel_cli.commands.job import prepare, task_main
from bigmodel_cli.deploy.inputs import held_out_batches, is_token_input
from bigmodel_cli.deploy.results import print_rows, require_counts, results_dir, write_table
from bigmodel_cli.errors import UserError
from bigmodel_cli.explain.faithfulness import deletion_areas
from bigmodel_cli.explain.methods import METHODS, image_attributions, text_attributions
from bigmodel_cli.explain.render import image_grid, print_tokens, token_html
from bigmodel_cli.extras import require_matplotlib
from bigmodel_cli.training.restore import require_checkpoint_path, restore


def first_test_samples(datamodule, count: int):
    parts = list(held_out_batches(datamodule, count))
    xs, ys = [x for x, _ in parts], [y for _, y in parts]
    if is_token_input(xs[0]):
        length = max(x.shape[1] for x in xs)
        xs = [torch.nn.functional.pad(x, (0, length - x.shape[1])) for x in xs]
    return torch.cat(xs), torch.cat(ys)


def explain_images(cfg, model, datamodule, pixels, labels, where):
    mean, std = datamodule.mean.cpu(), datamodule.std.cpu()
    x = (pixels.float() / 255 - mean) / std
    black = ((0 - mean) / std).expand(1, *x.shape[1:])
    with torch.no_grad():
        probabilities = torch.softmax(model(x), -1)
    target = probabilities.argmax(-1)
    scores = image_attributions(cfg.method, model, x, target, black, int(cfg.steps)).detach().sum(1)
    n, h, w = scores.shape

    def delete(removed, _step):
        return torch.where(removed.view(n, 1, h, w), black, x)

    areas = deletion_areas(
        model,
        scores.flatten(1),
        torch.ones(n, h * w, dtype=torch.bool),
        delete,
        target,
        int(cfg.deletion_steps),
        cfg.seed,
    )
    titles = [
        f"pred {p} ({probabilities[i, p]:.2f}), true {t}"
        for i, (p, t) in enumerate(zip(target.tolist(), labels.tolist()))
    ]
    path = where / f"{cfg.method}.png"
    image_grid(path, pixels, scores, titles, cfg.method)
    return areas, path


def explain_tokens(cfg, model, datamodule, ids, labels, where):
    with torch.no_grad():
        probabilities = torch.softmax(model(ids), -1)
    target = probabilities.argmax(-1)
    scores = text_attributions(cfg.method, model, ids, target, int(cfg.steps)).detach()
    real = ids != 0

    def delete(removed, _step):
        return torch.where(removed, torch.zeros_like(ids), ids)

    areas = deletion_areas(model, scores, real, delete, target, int(cfg.deletion_steps), cfg.seed)
    decode = datamodule.tokenizer.decode
    samples = [
        (
            [decode([token]) for token in row[mask].tolist()],
            score[mask].tolist(),
            f"pred {p} ({probabilities[i, p]:.2f}), true {t}",
        )
        for i, (row, score, mask, p, t) in enumerate(zip(ids, scores, real, target.tolist(), labels.tolist()))
    ]
    path = where / f"{cfg.method}.html"
    token_html(path, samples, cfg.method)
    print_tokens(samples)
    return areas, path


def run(cfg: DictConfig) -> dict[str, float]:
    require_checkpoint_path(cfg)
    if cfg.method not in METHODS:
        raise UserError(f"method={cfg.method} is not an attribution method; valid choices: {', '.join(METHODS)}")
    require_counts(cfg, {"samples": 8, "steps": 32, "deletion_steps": 16})
    prepare(cfg)
    module, datamodule = restore(cfg)
    task = module.config["data"].get("task", "classification")
    if task != "classification":
        raise UserError(
            f"ckpt_path={cfg.ckpt_path} is a {task} model; bigmodel explain attributes a classifier's "
            f"predicted class; fix: give a checkpoint of a classification run"
        )
    where = results_dir(cfg.ckpt_path, cfg.results_dir, "explain")
    model = module.backbone.eval()
    inputs, labels = first_test_samples(datamodule, int(cfg.samples))
    if not is_token_input(inputs):
        require_matplotlib("bigmodel explain on images (its PNG grid)")
    start = time.perf_counter()
    explain = explain_tokens if is_token_input(inputs) else explain_images
    areas, path = explain(cfg, model, datamodule, inputs, labels, where)
    row = {
        "method": cfg.method,
        "samples": len(inputs),
        **areas,
        "ratio": areas["deletion_auc"] / areas["random_auc"],
        "seconds": time.perf_counter() - start,
        "file": path.name,
    }
    paths = write_table(where, "explain", "method", [row])
    print_rows(f"bigmodel explain: {cfg.ckpt_path}", [row], "method", [path, *paths])
    return {f"explain/{k}": float(v) for k, v in row.items() if isinstance(v, (int, float))}


def main(cfg: DictConfig):
    return task_main(run, cfg)
