"""init_from=<checkpoint or run dir>: start a new run from another run's weights (transfer learning).

Only the weights come along: every tensor whose name and shape match the new model is loaded; a
tensor whose shape differs (a head for 10 classes where 2 are wanted) keeps its fresh
initialisation; the checkpoint's tensors the new model lacks (a masked-LM head) are left unused.
A classifier's head starts fresh even where it matches (init_head=fresh, the default): it maps the
features to the source run's classes, and starting from it cost 8 points of test accuracy on
Fashion-MNIST's classes 5-9 fine-tuned from classes 0-4 (README, Results); init_head=pretrained
loads it too.
A token embedding of another row count (data.vocab_size is a cap, the vocabulary may be smaller)
loads the rows of the checkpoint's vocabulary, which the run's text is then read with.
No optimizer, scheduler or epoch state is read: that is resume=, which continues the same run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bigmodel_cli.checkpoints.files import CHECKPOINT_HINT, load_checkpoint, saved_config
from bigmodel_cli.errors import UserError


@dataclass
class Transfer:
    """What init_from did with each tensor: names, and shapes where they differ."""

    loaded: list[str] = field(default_factory=list)
    reinitialised: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # name, theirs, ours
    unused: list[tuple[str, tuple]] = field(default_factory=list)  # in the checkpoint only
    fresh: list[tuple[str, tuple]] = field(default_factory=list)  # in the new model only
    new_head: list[str] = field(default_factory=list)  # matching, left fresh by init_head=fresh
    tokenizer: dict | None = None  # the tokenizer the checkpoint was trained with (text models)
    # Token embeddings whose row count differs (data.vocab_size) but both hold the checkpoint's
    # vocabulary: its rows are loaded, the rest keep their initialisation. name, theirs, ours, rows
    vocabulary_rows: list[tuple[str, tuple, tuple, int]] = field(default_factory=list)


def checkpoint_path(source: str, key: str = "init_from") -> Path:
    """A checkpoint file, or a run directory's best checkpoint (`key`: the option that named it)."""
    path = Path(source)
    if path.is_dir():
        best = path / "checkpoints" / "best.ckpt"
        if not best.is_file():
            raise UserError(
                f"{key}={source}: a directory without checkpoints/best.ckpt; fix: give a run directory "
                f"of bigmodel train (outputs/train/<run>) or {CHECKPOINT_HINT}"
            )
        return best
    if not path.exists():
        raise UserError(f"{key}={source} does not exist; fix: give a run directory or {CHECKPOINT_HINT}")
    return path


def match(ours: dict, theirs: dict) -> Transfer:
    transfer = Transfer()
    for name, tensor in ours.items():
        other = theirs.get(name)
        if other is None:
            transfer.fresh.append((name, tuple(tensor.shape)))
        elif tuple(other.shape) == tuple(tensor.shape):
            transfer.loaded.append(name)
        else:
            transfer.reinitialised.append((name, tuple(other.shape), tuple(tensor.shape)))
    transfer.unused = [(name, tuple(t.shape)) for name, t in theirs.items() if name not in ours]
    return transfer


HEADS = ("fresh", "pretrained")


def head_choice(config) -> str:
    """init_head, checked whether or not init_from is set (configs saved before it: fresh)."""
    head = str(config.get("init_head", "fresh"))
    if head not in HEADS:
        raise UserError(
            f"init_head={head} is not known; valid choices: fresh, pretrained "
            f"(fix: init_head=pretrained loads the source run's classifier head too, init_head=fresh starts it anew)"
        )
    return head


def class_head(module) -> str | None:
    """The name prefix of a classifier's head tensors ('backbone.head.'); None for the language
    models, whose heads predict the vocabulary, not a run's classes."""
    from bigmodel_cli.callbacks.finetuning import head_name
    from bigmodel_cli.lightning_modules.classifier import ClassificationModule

    if not isinstance(module, ClassificationModule):
        return None
    return f"backbone.{head_name(module.backbone)}."


def leave_head_fresh(module, transfer: Transfer) -> None:
    """Moves the class head's matching tensors from `loaded` to `new_head`, except those that share
    their storage with the body (a head tied to the token embedding loads with it)."""
    prefix = class_head(module)
    if prefix is None:
        return
    state = module.state_dict()
    body = {t.data_ptr() for name, t in state.items() if not name.startswith(prefix)}
    transfer.new_head = [n for n in transfer.loaded if n.startswith(prefix) and state[n].data_ptr() not in body]
    transfer.loaded = [n for n in transfer.loaded if n not in transfer.new_head]


def model_name(config: dict) -> str:
    return str(config.get("model", {}).get("_target_", "?")).rsplit(".", 1)[-1]


def initialise_from(module, source: str, config: dict) -> Transfer:
    """Load the matching weights of `source` into `module` (in place), the class head only with
    init_head=pretrained; returns what it did."""
    path = checkpoint_path(source)
    checkpoint = load_checkpoint(path)
    theirs = {k: v for k, v in checkpoint["state_dict"].items() if hasattr(v, "shape")}
    transfer = match(module.state_dict(), theirs)
    if not transfer.loaded:
        raise UserError(
            f"init_from={source}: none of the {len(theirs)} tensors of its {model_name(saved_config(checkpoint))} "
            f"matches a tensor of this run's {model_name(config)} by name and shape; fix: initialise from a "
            f"run of the same model family (model=...), or train without init_from"
        )
    if head_choice(config) == "fresh":
        leave_head_fresh(module, transfer)
    transfer.tokenizer = checkpoint.get("tokenizer")
    weights = {name: theirs[name] for name in transfer.loaded}
    weights.update(vocabulary_rows(module, transfer, theirs))
    module.load_state_dict(weights, strict=False)
    return transfer


def vocabulary_rows(module, transfer: Transfer, theirs: dict) -> dict:
    """The token embeddings whose only difference is the row count (data.vocab_size, a cap: a
    pretraining vocabulary of 25 words in an 8000-row embedding): when both hold every id of the
    checkpoint's tokenizer, those rows are loaded (the others are never indexed) instead of the
    whole tensor starting fresh. Moves them from `reinitialised` to `loaded`; returns the tensors."""
    if transfer.tokenizer is None:
        return {}
    from torch import nn

    from bigmodel_cli.data.tokenizers import from_state

    size = from_state(transfer.tokenizer).size
    embeddings = {f"{name}.weight" for name, m in module.named_modules() if isinstance(m, nn.Embedding)}
    ours = module.state_dict()
    weights = {}
    for entry in list(transfer.reinitialised):
        name, their_shape, our_shape = entry
        if name in embeddings and their_shape[1:] == our_shape[1:] and min(their_shape[0], our_shape[0]) >= size:
            tensor = ours[name].clone()
            tensor[:size] = theirs[name][:size]
            weights[name] = tensor
            transfer.reinitialised.remove(entry)
            transfer.loaded.append(name)
            transfer.vocabulary_rows.append((name, their_shape, our_shape, size))
    return weights


def hand_over_tokenizer(datamodule, transfer: Transfer, source: str, vocab_size) -> None:
    """Text read with the vocabulary the weights were trained with: the checkpoint's tokenizer
    replaces the one the data would build; a different one already fixed (bytes) is an error."""
    if transfer.tokenizer is None or not hasattr(datamodule, "tokenizer"):
        return
    from bigmodel_cli.data.tokenizers import from_state

    theirs = from_state(transfer.tokenizer)
    ours = datamodule.tokenizer
    if ours is not None and ours.state() != transfer.tokenizer:
        raise UserError(
            f"init_from={source} was trained with a {describe(theirs)}, this run's data uses a {describe(ours)}; "
            f"fix: data.tokenizer={transfer.tokenizer['kind']} data.vocab_size={theirs.size}"
        )
    # data.vocab_size sizes the embedding; it must hold every id of the tokenizer (rows past it are
    # never indexed: initialise_from loads the vocabulary's rows whatever the embedding's size).
    if vocab_size is not None and int(vocab_size) < theirs.size:
        raise UserError(
            f"init_from={source} was trained with a {describe(theirs)}, more than this run's "
            f"data.vocab_size={vocab_size} holds; fix: data.vocab_size={theirs.size}"
        )
    datamodule.tokenizer = theirs


def describe(tokenizer) -> str:
    state = tokenizer.state()
    return f"{state['kind']} tokenizer of {tokenizer.size} tokens"


def transfer_table(transfer: Transfer, source: str):
    """One table: what was loaded (by module, counted), re-initialised and left unused (each tensor)."""
    from rich.table import Table

    table = Table(title=f"init_from {source}", title_justify="left")
    for header in ("tensors", "what", "shape"):
        table.add_column(header, overflow="fold")
    groups: dict[str, int] = {}
    partial = {name for name, _, _, _ in transfer.vocabulary_rows}
    for name in (n for n in transfer.loaded if n not in partial):
        prefix = ".".join(name.split(".")[:2])
        groups[prefix] = groups.get(prefix, 0) + 1
    for prefix, count in groups.items():
        table.add_row(f"{prefix}.* ({count})", "loaded", "")
    for name, theirs, ours, rows in transfer.vocabulary_rows:
        table.add_row(name, f"loaded: the vocabulary's {rows} rows (the rest fresh)", f"{list(theirs)} -> {list(ours)}")
    for name, theirs, ours in transfer.reinitialised:
        table.add_row(name, "re-initialised (shape differs)", f"{list(theirs)} -> {list(ours)}")
    for name in transfer.new_head:
        table.add_row(name, "fresh head (init_head=fresh; init_head=pretrained loads it)", "")
    for name, shape in transfer.fresh:
        table.add_row(name, "new (not in the checkpoint)", str(list(shape)))
    for name, shape in transfer.unused:
        table.add_row(name, "unused (not in this model)", str(list(shape)))
    return table
