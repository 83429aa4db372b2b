"""Text <-> token ids, with no vocabulary download.

- `ByteTokenizer`: UTF-8 bytes, shifted by `offset` so that id 0 can be padding (classification)
  or not (language modelling, offset 0).
- `Vocabulary`: characters or words counted on the training split, most frequent first, cut at a
  maximum size and a minimum frequency; anything else maps to the unknown token.

Both describe themselves as plain containers (`state()`), which checkpoints store, so that
`bigmodel generate` decodes with exactly the tokenizer the model was trained with.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from bigmodel_cli.errors import UserError

PAD = "<pad>"
UNK = "<unk>"
# Masked-LM input token (data=text_corpus puts it third: <pad> 0, <unk> 1, <mask> 2).
MASK = "<mask>"
WORD = re.compile(r"\w+|[^\w\s]")
KINDS = ("byte", "char", "word")


class ByteTokenizer:
    def __init__(self, offset: int = 0):
        self.offset = offset
        self.size = 256 + offset

    def encode(self, text: str) -> list[int]:
        return [b + self.offset for b in text.encode("utf-8")]

    def decode(self, ids: Iterable[int]) -> str:
        return bytes(i - self.offset for i in ids if self.offset <= i < self.size).decode("utf-8", errors="replace")

    def state(self) -> dict:
        return {"kind": "byte", "offset": self.offset}


class Vocabulary:
    def __init__(self, tokens: list[str], level: str, unk_token: str = UNK):
        self.tokens, self.level, self.unk_token = list(tokens), level, unk_token
        self.index = {token: i for i, token in enumerate(self.tokens)}
        self.unk = self.index.get(unk_token, 0)
        self.size = len(self.tokens)

    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        level: str,
        max_size: int,
        min_freq: int = 1,
        specials: tuple[str, ...] = (PAD, UNK),
        unk_token: str = UNK,
    ) -> Vocabulary:
        """Specials first, then the most frequent units (ties alphabetical) up to max_size in all."""
        counts = Counter(unit for text in texts for unit in split(text, level))
        ranked = sorted(
            (u for u, c in counts.items() if c >= min_freq and u not in specials), key=lambda u: (-counts[u], u)
        )
        return cls([*specials, *ranked][: max(max_size, len(specials))], level, unk_token)

    def encode(self, text: str) -> list[int]:
        return [self.index.get(unit, self.unk) for unit in split(text, self.level)]

    def decode(self, ids: Iterable[int]) -> str:
        units = [self.tokens[i] for i in ids if 0 <= i < self.size and self.tokens[i] != PAD]
        return ("" if self.level == "char" else " ").join(units)

    def state(self) -> dict:
        return {"kind": self.level, "tokens": self.tokens, "unk_token": self.unk_token}


def split(text: str, level: str) -> list[str]:
    return list(text) if level == "char" else WORD.findall(text.lower())


def check_kind(kind: str, allowed: tuple[str, ...] = KINDS) -> None:
    if kind not in allowed:
        raise UserError(
            f"unknown tokenizer '{kind}'; valid choices: {', '.join(allowed)} (fix: data.tokenizer={allowed[0]})"
        )


def from_state(state: dict):
    """The tokenizer a checkpoint was trained with, from its `state()`."""
    if state["kind"] == "byte":
        return ByteTokenizer(int(state.get("offset", 0)))
    return Vocabulary(state["tokens"], state["kind"], state.get("unk_token", UNK))
