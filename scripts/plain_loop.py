"""The hand-written PyTorch loop that scripts/bench.py compares `bigmodel train` with.

    python scripts/plain_loop.py --out plain.json [--epochs 3] [--steps N] [--val-steps N]
        [--threads 2] [--device cpu] [--lightning] -- data=fashion_mnist model=cnn ...

It composes the same config as `bigmodel train <overrides>` and takes from it the same data
tensors (the DataModule's splits, uint8, batched by a seeded permutation and converted to float
and normalised per batch exactly as bigmodel does), the same backbone class and arguments, the same
optimizer and learning rate, batch size and number of steps, and validates on the same number of
validation batches each epoch (loss and accuracy, one host sync per epoch). Each epoch's wall time
is written to --out as {"epoch_seconds": [...], "step_seconds": [...], "val_acc": [...]}
(step_seconds: each epoch's training steps alone, without its validation).

--lightning runs the same work through Lightning with nothing of bigmodel's around it: a bare
LightningModule (the backbone, its loss, the optimizer; validation counts correct predictions) on
bigmodel's DataModule, a Trainer with no logger, callbacks, checkpoints, progress bar or summary,
timed by the same EpochTimer as `bigmodel train`. It is the floor Lightning's own per-step
machinery sets: bigmodel's time above it is bigmodel's.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from bigmodel_cli.config.catalogue import conf_dir
    from bigmodel_cli.config.resolvers import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        # paths.* read Hydra's runtime, which exists only inside a Hydra app: give them directly.
        return hydra_compose(
            "train", overrides=[*overrides, f"paths.data_dir={os.getcwd()}/data", f"paths.output_dir={os.getcwd()}"]
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help="training batches per epoch (default: all)")
    parser.add_argument("--val-steps", type=int, default=None, help="validation batches per epoch (default: all)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lightning", action="store_true", help="the bare-Lightning floor instead of the plain loop")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)

    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from bigmodel_cli.lightning_modules.optim import build_optimizer

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = compose(args.overrides)
    torch.manual_seed(cfg.seed)
    device = torch.device(args.device)
    data = instantiate(cfg.data)
    data.setup("fit")
    model = instantiate(cfg.model).to(device)
    optimizer = build_optimizer(model, OmegaConf.to_container(cfg.optimizer, resolve=True))

    def criterion(logits, y):  # a class per sample, or per position (language models): one cross-entropy
        return torch.nn.functional.cross_entropy(logits.flatten(0, -2), y.flatten())

    if args.lightning:
        return lightning_floor(args, cfg, data, model, optimizer, criterion)
    batches = image_batches if hasattr(data.datasets["train"], "images") else loader_batches
    train_batches, val_batches = batches(data, device, int(cfg.data.batch_size))

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    seconds, step_seconds, accuracies = [], [], []
    for epoch in range(args.epochs):
        sync()
        start = time.perf_counter()
        model.train()
        for step, (x, y) in enumerate(train_batches(epoch)):
            if args.steps is not None and step >= args.steps:
                break
            loss = criterion(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        sync()
        step_seconds.append(time.perf_counter() - start)
        model.eval()
        correct = torch.zeros((), device=device)
        seen = 0
        with torch.no_grad():
            for step, (x, y) in enumerate(val_batches(0)):
                if args.val_steps is not None and step >= args.val_steps:
                    break
                correct += (model(x).argmax(-1) == y).sum()
                seen += y.numel()
        accuracies.append(float(correct) / max(seen, 1))
        sync()
        seconds.append(time.perf_counter() - start)
    with open(args.out, "w") as f:
        json.dump({"epoch_seconds": seconds, "step_seconds": step_seconds, "val_acc": accuracies}, f)


def image_batches(data, device, batch: int):
    """In-memory images as bigmodel's tensor loader gives them: a seeded permutation per epoch,
    uint8 converted to float and normalised per batch."""
    import torch

    train, val = data.datasets["train"], data.datasets["val"]
    train_x, train_y = train.images.to(device), train.labels.to(device)
    val_x, val_y = val.images.to(device), val.labels.to(device)
    mean, std = data.mean.to(device), data.std.to(device)

    def normalised(images):
        return (images.float().div_(255) - mean) / std

    def train_batches(epoch: int):
        order = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(epoch)).to(device)
        for first in range(0, len(order), batch):
            index = order[first : first + batch]
            yield normalised(train_x[index]), train_y[index]

    def val_batches(_epoch: int):
        for first in range(0, len(val_y), batch):
            yield normalised(val_x[first : first + batch]), val_y[first : first + batch]

    return train_batches, val_batches


def loader_batches(data, device, batch: int):
    """Any other split (token blocks, texts): a DataLoader with the DataModule's collate, shuffled by a
    seeded generator per epoch."""
    import torch
    from torch.utils.data import DataLoader

    def batches(split: str, shuffle: bool):
        def each(epoch: int):
            generator = torch.Generator().manual_seed(epoch)
            loader = DataLoader(
                data.datasets[split], batch_size=batch, shuffle=shuffle, generator=generator, collate_fn=data.collate_fn
            )
            for x, y in loader:
                yield x.to(device), y.to(device)

        return each

    return batches("train", True), batches("val", False)


def lightning_floor(args, cfg, data, model, optimizer, criterion) -> None:
    import pytorch_lightning as pl
    import torch

    from bigmodel_cli.callbacks.timing import EpochTimer

    class Bare(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = model
            self.correct = torch.zeros(())
            self.seen = 0

        def training_step(self, batch, batch_idx):
            x, y = batch
            return criterion(self.model(x), y)

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.correct += (self.model(x).argmax(-1) == y).sum()
            self.seen += y.numel()

        def configure_optimizers(self):
            return optimizer

    timer = EpochTimer(args.out)
    trainer = pl.Trainer(
        accelerator="gpu" if args.device == "cuda" else "cpu", devices=1, max_epochs=args.epochs,
        limit_train_batches=args.steps or 1.0, limit_val_batches=args.val_steps or 1.0, num_sanity_val_steps=0,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[timer], deterministic=bool(cfg.trainer.get("deterministic", False)),
    )  # fmt: skip
    trainer.fit(Bare().to(torch.device(args.device)), datamodule=data)


if __name__ == "__main__":
    main()
