"""bigmodel generate: sample text from a trained language-model checkpoint.

The model comes back from the checkpoint's saved config and weights (as for test/predict), the
tokenizer from the checkpoint itself; samples are printed and written to samples.txt in the run dir.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from bigmodel_cli.atomic import write_text
from bigmodel_cli.commands.job import prepare, task_main
from bigmodel_cli.errors import UserError
from bigmodel_cli.process_state import is_rank_zero
from bigmodel_cli.training.restore import require_checkpoint_path, restore_module


def pick_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(name):
        raise UserError(
            f"device={name} is not available here; valid choices: "
            f"{', '.join(['auto', *(d for d, ok in available.items() if ok)])} (fix: device=auto)"
        )
    return torch.device(name)


def check_settings(cfg: DictConfig) -> None:
    if (
        cfg.max_new_tokens < 0
        or cfg.num_samples < 1
        or cfg.temperature < 0
        or (cfg.top_k is not None and cfg.top_k < 1)
    ):
        raise UserError(
            f"max_new_tokens={cfg.max_new_tokens}, num_samples={cfg.num_samples}, temperature="
            f"{cfg.temperature}, top_k={cfg.top_k}: use max_new_tokens >= 0, num_samples >= 1, "
            f"temperature >= 0 (0 = greedy) and top_k >= 1 or null"
        )


def run(cfg: DictConfig) -> dict[str, float]:
    import torch

    from bigmodel_cli.data.tokenizers import from_state

    require_checkpoint_path(cfg)
    seed = prepare(cfg)  # first: it type-checks the values check_settings compares with numbers
    check_settings(cfg)
    module, _ = restore_module(cfg)
    backbone = getattr(module, "backbone", None)
    if not hasattr(backbone, "generate") or module.tokenizer_state is None:
        name = type(backbone).__name__
        raise UserError(
            f"ckpt_path={cfg.ckpt_path} holds a {name}, which does not generate text; fix: give a "
            f"checkpoint of a language model, e.g. from `bigmodel train model=gpt data=char_lm`"
        )
    tokenizer = from_state(module.tokenizer_state)
    device = pick_device(cfg.device)
    backbone.to(device).eval()
    prompt = tokenizer.encode(str(cfg.prompt)) or [0]
    idx = torch.tensor([prompt] * cfg.num_samples, dtype=torch.long, device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    out = backbone.generate(idx, cfg.max_new_tokens, float(cfg.temperature), cfg.top_k, generator)
    samples = [tokenizer.decode(row) for row in out[:, 0 if cfg.prompt else 1 :].tolist()]
    if is_rank_zero():
        separator = "\n" + "-" * 40 + "\n"
        print(separator.join(samples))
        write_text(Path(cfg.paths.output_dir, "samples.txt"), separator.join(samples) + "\n")
    return {"generate/samples": float(len(samples)), "generate/new_tokens": float(cfg.max_new_tokens)}


def main(cfg: DictConfig):
    return task_main(run, cfg)
