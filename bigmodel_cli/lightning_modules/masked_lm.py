"""The masked-language-model LightningModule (data.task=masked_lm, model=bert): BERT's masking
rule on every batch, cross-entropy on the masked positions only; logs loss, perplexity and
masked-token accuracy (`acc`). The tokenizer travels in each checkpoint (as for language models),
so fine-tuning with init_from reads text with the same vocabulary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bigmodel_cli.data.corpus import SPECIALS
from bigmodel_cli.data.tokenizers import MASK
from bigmodel_cli.lightning_modules.language_model import LanguageModelModule

MASK_ID = SPECIALS.index(MASK)
IGNORE = -100  # cross_entropy's ignore_index: positions that are not predicted


def mask_tokens(
    ids: torch.Tensor, vocab_size: int, rate: float = 0.15, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's rule: `rate` of the real (non-padding) tokens are selected; of those 80% become
    <mask>, 10% a random word, 10% stay. Returns (inputs, targets): targets hold the original id
    at selected positions and IGNORE elsewhere."""
    draw = torch.rand(ids.shape, generator=generator, device="cpu").to(ids.device)
    selected = (draw < rate) & (ids != 0)
    how = torch.rand(ids.shape, generator=generator, device="cpu").to(ids.device)
    inputs = ids.clone()
    inputs[selected & (how < 0.8)] = MASK_ID
    randomised = selected & (how >= 0.8) & (how < 0.9)
    # Random words are real ones: ids from after the specials to the vocabulary's last.
    high = max(vocab_size, len(SPECIALS) + 1)
    words = torch.randint(len(SPECIALS), high, ids.shape, generator=generator, device="cpu").to(ids.device)
    inputs[randomised] = words[randomised]
    targets = torch.where(selected, ids, torch.full_like(ids, IGNORE))
    return inputs, targets


class MaskedLMModule(LanguageModelModule):
    def _step(self, batch, split: str) -> torch.Tensor:
        ids = batch[0] if isinstance(batch, list | tuple) else batch
        # Evaluation masks the same positions every epoch (a fixed generator), so val/test compare.
        generator = None if split == "train" else torch.Generator().manual_seed(self.eval_batches)
        self.eval_batches += split != "train"
        inputs, targets = mask_tokens(ids, self.vocabulary_size(), generator=generator)
        chosen = targets != IGNORE
        logits = self.masked_predictions(inputs, chosen)
        criterion = self.criterion if split == "train" else F.cross_entropy
        loss = criterion(logits, targets[chosen])
        on_step = split == "train"
        self.log(f"{split}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, sync_dist=not on_step)
        accuracy = (logits.argmax(-1) == targets[chosen]).float().mean()
        self.log(f"{split}/acc", accuracy, on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def masked_predictions(self, inputs: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        """The MLM head's logits at the chosen positions. The head projects only those
        (scripts/bench_mlm.py times both ways), except under compile.fullgraph: a boolean
        selection has no static shape, so one graph projects every token and the loss selects."""
        if self.compiled is not None and self.compiled.fullgraph:
            return self(inputs)[chosen]
        return self.backbone(inputs, predict=chosen)

    eval_batches = 0

    def vocabulary_size(self) -> int:
        """The ids the text can hold: the tokenizer's size (set when fitting starts, or from the
        checkpoint), which data.vocab_size only caps; random-word replacements stay within it."""
        capacity = int(self.config["data"]["vocab_size"])
        if self.tokenizer_state is None:
            return capacity
        from bigmodel_cli.data.tokenizers import from_state

        return min(capacity, from_state(self.tokenizer_state).size)

    def on_validation_epoch_start(self) -> None:
        self.eval_batches = 0

    def on_test_epoch_start(self) -> None:
        self.eval_batches = 0

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        ids = batch[0] if isinstance(batch, list | tuple) else batch
        return self.optimizer_loss(self.add_penalties(self._step(batch, "train")), len(ids))
