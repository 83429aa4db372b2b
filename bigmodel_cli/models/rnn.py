"""Recurrent classifier: an RNN, LSTM or GRU over a sequence, classified from its final states.

On images each row is one time step (sequential-MNIST style: H steps of C*W features); on text
each token is a step (id 0 is padding; sequences are packed so padding never reaches the cell).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from bigmodel_cli.errors import UserError
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
            _, state = self.rnn(x.permute(0, 2, 1, 3).flatten(2))
        elif torch.compiler.is_exporting():
            return self.head(self.drop(self.last_real_step(x)))
        else:
            lengths = (x != 0).sum(1).clamp(min=1).cpu()
            _, state = self.rnn(pack_padded_sequence(self.embed(x), lengths, batch_first=True, enforce_sorted=False))
        final = state[0] if isinstance(state, tuple) else state  # LSTM: (h, c)
        directions = 2 if self.rnn.bidirectional else 1
        # x.shape[0], not len(x): a plain int would fix the batch size of an export.
        last = final.view(self.rnn.num_layers, directions, x.shape[0], -1)[-1]  # top layer, each direction
        return self.head(self.drop(last.transpose(0, 1).flatten(1)))

    def last_real_step(self, x: torch.Tensor) -> torch.Tensor:
        """The top layer's output at each text's last real token: what the packed sequence's final
        state is (padding comes after it), in ops that torch.export can trace (packing cannot)."""
        if self.rnn.bidirectional:
            raise UserError(
                "model=rnn with model.bidirectional=true on text cannot be exported: its backward "
                "direction needs packed sequences, which torch.export cannot trace; fix: train with "
                "model.bidirectional=false to export"
            )
        outputs, _ = self.rnn(self.embed(x))
        last = (x != 0).sum(1).clamp(min=1) - 1
        return outputs[torch.arange(x.shape[0], device=x.device), last]
