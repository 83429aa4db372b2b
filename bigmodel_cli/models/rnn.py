"""Recurrent classifier: an RNN, LSTM or GRU over a sequence, classified from its final states.

On images each row is one time step (sequential-MNIST style: H steps of C*W features); on text
each token is a step (id 0 is padding; sequences are packed so padding never reaches the cell).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from bigmodel_cli.models.layers import check_choice

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RNN(nn.Module):
    modalities = ("image", "text")

    def __init__(
        self,
        num_classes: int,
        modality: str = "image",
        in_channels: int | None = None,
        image_size: int | None = None,
        vocab_size: int | None = None,
        cell: str = "lstm",
        hidden: int = 64,
        layers: int = 1,
        bidirectional: bool = False,
        embed_dim: int = 64,
        dropout: float = 0.0,
    ):
        super().__init__()
        check_choice("cell", cell, tuple(CELLS))
        self.modality = modality
        if modality == "image":
            self.embed, features = None, in_channels * image_size
        else:
            self.embed, features = nn.Embedding(vocab_size, embed_dim, padding_idx=0), embed_dim
        self.rnn = CELLS[cell](
            features,
            hidden,
            num_layers=layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden * (2 if bidirectional else 1), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.embed is None:  # (B, C, H, W) -> H steps of C*W
            sequence = x.permute(0, 2, 1, 3).flatten(2)
        else:
            lengths = (x != 0).sum(1).clamp(min=1).cpu()
            sequence = pack_padded_sequence(self.embed(x), lengths, batch_first=True, enforce_sorted=False)
        _, state = self.rnn(sequence)
        final = state[0] if isinstance(state, tuple) else state  # LSTM: (h, c)
        directions = 2 if self.rnn.bidirectional else 1
        last = final.view(self.rnn.num_layers, directions, len(x), -1)[-1]  # top layer, each direction
        return self.head(self.drop(last.transpose(0, 1).flatten(1)))
