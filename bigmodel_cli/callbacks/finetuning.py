"""The finetune group, read in this one place: which parts of the backbone train, and at what lr.

- none: everything trains at optimizer.lr;
- linear_probe: the body is frozen for the whole run (batch norm too: its statistics do not move,
  the layers run in eval mode), only the classifier head trains;
- gradual: the body is frozen for `unfreeze_at_epoch` epochs, then trains at
  `backbone_lr_factor` x the head's lr (Lightning's BaseFinetuning adds its parameter group);
- layerwise: layer-wise lr decay, the usual way BERT is fine-tuned: the head trains at
  optimizer.lr and each layer below at `layer_decay` x the lr of the layer above it.

The head is the backbone's `head` module when it has one, else its last Linear layer; the body is
every other module of the backbone.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytorch_lightning.callbacks import BaseFinetuning
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from bigmodel_cli.config.contracts import keys_group_settings
from bigmodel_cli.errors import UserError, choices_text

MODES = ("none", "linear_probe", "gradual", "layerwise")


@dataclass(frozen=True)
class Finetune:
    """The finetune node; the keys a mode does not read stay None (values: conf/finetune/<mode>.yaml)."""

    mode: str = "none"
    unfreeze_at_epoch: int | None = None  # gradual
    backbone_lr_factor: float | None = None  # gradual
    layer_decay: float | None = None  # layerwise

    @classmethod
    def from_config(cls, config) -> Finetune:
        made = cls(**keys_group_settings(config, "finetune", cls, option_key="mode"))
        if made.mode not in MODES:
            raise UserError(
                f"finetune.mode={made.mode} is not known; valid choices: {choices_text(MODES)} (fix: finetune=gradual)"
            )
        return made

    def check_trainable(self, backbone: nn.Module) -> None:
        """Before training: a frozen body must leave something to train (a head tied to the token
        embedding, as gpt's, is frozen with it)."""
        if self.mode not in ("linear_probe", "gradual"):
            return
        body = {id(p) for m in body_modules(backbone) for p in m.parameters(recurse=False)}
        if all(id(p) in body for p in backbone.get_submodule(head_name(backbone)).parameters()):
            raise UserError(
                f"finetune={self.mode} freezes the body and leaves model {type(backbone).__name__} nothing to train: "
                f"its head ({head_name(backbone)}) shares its weights with the body (tied embeddings); "
                f"fix: finetune=layerwise, or finetune=none"
            )

    def callback(self):
        """The Lightning callback that freezes (and unfreezes) the body, or None."""
        if self.mode == "linear_probe":
            return FreezeBody(unfreeze_at_epoch=None)
        if self.mode == "gradual":
            return FreezeBody(unfreeze_at_epoch=int(self.unfreeze_at_epoch), lr_factor=float(self.backbone_lr_factor))
        return None

    def lr_scales(self, backbone: nn.Module, prefix: str = "backbone.") -> dict[str, float]:
        """Parameter name -> lr multiplier (layerwise only; empty: every parameter at optimizer.lr)."""
        if self.mode != "layerwise":
            return {}
        units = layer_units(backbone)
        top = len(units) - 1
        return {
            prefix + name: float(self.layer_decay) ** (top - depth)
            for depth, names in enumerate(units)
            for name in names
        }


def head_name(backbone: nn.Module) -> str:
    """The classifier head's module name within the backbone."""
    if isinstance(getattr(backbone, "head", None), nn.Module):
        return "head"
    linears = [name for name, m in backbone.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise UserError(f"model {type(backbone).__name__} has no Linear head to fine-tune; fix: finetune=none")
    return linears[-1]


class OwnParameters(nn.Module):
    """A module's own parameters without its children: Lightning's freezing helpers descend into
    any module they are given, so a transformer's root (its [CLS] token and positions) would
    bring the head along."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self._parameters = module._parameters  # the same dict: the same Parameter objects


def body_modules(backbone: nn.Module) -> list[nn.Module]:
    """Every module of the backbone that holds parameters of its own and is not in the head (one
    with children as its own parameters alone: its children are listed in their own right)."""
    head = head_name(backbone)
    return [
        OwnParameters(m) if any(True for _ in m.children()) else m
        for name, m in backbone.named_modules()
        if name != head and not name.startswith(head + ".") and any(True for _ in m.parameters(recurse=False))
    ]


def layer_units(backbone: nn.Module) -> list[list[str]]:
    """The backbone's parameter names grouped into layers, bottom to top: its own parameters
    (embeddings, [CLS], positions) first, then each child in order, a container's elements one by
    one (a transformer's blocks, a CNN's layers), the head last."""
    head = head_name(backbone)
    root, prefix = backbone, ""
    while len(list(root.children())) == 1 and not list(root.parameters(recurse=False)):
        name, root = next(iter(root.named_children()))  # a wrapper (ResNet's torchvision net): look inside
        prefix += name + "."
    own = [prefix + name for name, _ in root.named_parameters(recurse=False)]
    body, top = ([own] if own else []), []
    for name, child in root.named_children():
        full = prefix + name
        container = isinstance(child, nn.ModuleList | nn.Sequential)
        pieces = [(f"{full}.{i}", e) for i, e in child.named_children()] if container else [(full, child)]
        for piece_name, piece in pieces:
            names = [f"{piece_name}.{n}" for n, _ in piece.named_parameters()]
            in_head = piece_name == head or piece_name.startswith(head + ".") or head.startswith(piece_name + ".")
            if in_head:
                top.extend(names)
            elif names:
                body.append(names)
    return [*body, top]


class FreezeBody(BaseFinetuning):
    """Freezes the backbone's body before training (and, with unfreeze_at_epoch, unfreezes it then,
    at lr_factor x the head's current lr). Frozen batch-norm layers run in eval mode."""

    def __init__(self, unfreeze_at_epoch: int | None, lr_factor: float = 0.1):
        super().__init__()
        self.unfreeze_at_epoch, self.lr_factor = unfreeze_at_epoch, lr_factor

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self.unfreeze_at_epoch is not None and trainer.world_size > 1:
            # DDP registers the parameters that need gradients when it wraps the model, after this
            # freeze: a body unfrozen later would train on each rank without its gradients averaged.
            raise UserError(
                f"finetune=gradual cannot run on {trainer.world_size} processes: DDP would not average the "
                f"gradients of layers unfrozen after it started; fix: finetune=linear_probe or "
                f"finetune=layerwise, or gradual on one device"
            )
        super().setup(trainer, pl_module, stage)

    def freeze_before_training(self, pl_module) -> None:
        self.freeze(body_modules(pl_module.backbone), train_bn=False)

    def finetune_function(self, pl_module, epoch: int, optimizer) -> None:
        if epoch == self.unfreeze_at_epoch:
            lr = optimizer.param_groups[0]["lr"] * self.lr_factor
            self.unfreeze_and_add_param_group(body_modules(pl_module.backbone), optimizer, lr=lr, initial_denom_lr=1.0)
            pl_module.forget_decayed_weights()  # the body's weights take decay and penalties again

    def on_train_start(self, trainer, pl_module) -> None:
        self._frozen_norms_in_eval(pl_module)  # a run resumed mid-epoch gets no on_train_epoch_start
        schedules_cover_every_group(trainer, self.lr_factor)  # resumed after the unfreeze: the body's group is back

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        self._frozen_norms_in_eval(pl_module)
        schedules_cover_every_group(trainer, self.lr_factor)

    @staticmethod
    def _frozen_norms_in_eval(pl_module) -> None:
        for module in body_modules(pl_module.backbone):
            if isinstance(module, _BatchNorm) and not any(p.requires_grad for p in module.parameters()):
                module.eval()  # frozen: normalise with the pretrained statistics, never update them


# What schedulers keep in each parameter group (OneCycleLR all of them, every LRScheduler
# initial_lr), and their lists with an entry per group.
GROUP_LRS = ("initial_lr", "max_lr", "min_lr")
GROUP_MOMENTA = ("base_momentum", "max_momentum")
PER_GROUP = ("base_lrs", "min_lrs", "lr_lambdas")


def schedules_cover_every_group(trainer, lr_factor: float) -> None:
    """A scheduler built before the body's parameter group was added lacks its entries (a
    LambdaLR's lr function, as warmup_cosine's; OneCycleLR's max_lr and momenta; the plateau's
    min_lr) and fails at its next step. The body's group gets the head's, lrs at lr_factor x, so it follows
    the head's schedule at that factor from here on; a resumed run's group keeps what it had."""
    for config in trainer.lr_scheduler_configs:
        scheduler = config.scheduler
        head, *others = scheduler.optimizer.param_groups
        for group in others:
            for key in (*GROUP_LRS, *GROUP_MOMENTA):
                if key in head:
                    group.setdefault(key, head[key] * (lr_factor if key in GROUP_LRS else 1))
        for name in PER_GROUP:
            values = getattr(scheduler, name, None)
            for group in others[len(values) - 1 :] if values is not None else []:
                values.append(group.get("initial_lr", group["lr"]) if name == "base_lrs" else values[0])
