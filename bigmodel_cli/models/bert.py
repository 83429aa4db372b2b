"""BERT: the encoder-only Transformer of models/transformer.py on text (pre-norm blocks, learned
positions, [CLS] pooling), for masked-language-model pretraining or classification.

With data.task=masked_lm it has a masked-LM head (a vocabulary-sized prediction at every position)
and no classifier; with classification, a classifier on [CLS] and no MLM head. So init_from a
pretraining run loads the embeddings, positions and blocks, leaves the MLM head unused and starts
the classifier fresh.
"""

from __future__ import annotations

import torch
from torch import nn

from bigmodel_cli.models.transformer import Transformer


class BERT(Transformer):
    modalities = ("text",)

    def __init__(
        self,
        num_classes: int,
        vocab_size: int,
        max_length: int,
        task: str = "classification",
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        activation: str = "gelu",
        stochastic_depth: float = 0.0,
        activation_checkpointing: bool = False,
        pooling: str = "cls",
    ):
        super().__init__(
            num_classes=num_classes,
            modality="text",
            vocab_size=vocab_size,
            max_length=max_length,
            dim=dim,
            depth=depth,
            heads=heads,
            mlp_ratio=mlp_ratio,
            positions="learned",
            pooling=pooling,
            dropout=dropout,
            activation=activation,
            stochastic_depth=stochastic_depth,
            activation_checkpointing=activation_checkpointing,
        )
        self.masked_lm = task == "masked_lm"
        if self.masked_lm:
            del self.head
            self.mlm_head = nn.Linear(dim, vocab_size)

    def forward(self, x: torch.Tensor, predict: torch.Tensor | None = None) -> torch.Tensor:
        """Classifier logits, or the MLM head's: one prediction per input token ([CLS] dropped),
        or, given `predict` (a boolean mask over the tokens), at those positions only (B*L x
        vocab_size, flattened): pretraining scores 15% of the tokens, and the vocabulary-sized
        projection of the rest is most of a small BERT's step."""
        if not self.masked_lm:
            return super().forward(x)
        h = self.encode(x)[0]
        h = h if self.cls is None else h[:, 1:]
        return self.mlm_head(h if predict is None else h[predict])
