"""compile=true: torch.compile the backbone (not the LightningModule) for training.

The backbone is compiled in place (`nn.Module.compile`): it stays the same module holding the same
parameters, so state_dict keys carry no `_orig_mod.` prefix (a compiled run's checkpoint loads into
an eager model and back, for init_from=, resume= and every command after training), and whatever
acts on the parameters acts on what the compiled code reads, because parameters and buffers are
inputs of the compiled graphs, not constants baked into them: the optimizer's updates, EMA's swaps
of averaged weights, pruning's masks and hooks (a new hook recompiles), DDP's gradient hooks.

Dynamo traces the backbone once on the example batch before training (eval mode, no gradients:
nothing trains and no random numbers are drawn), so a model torch.compile cannot capture is found
before the first step: it trains eagerly with one line saying why, or, with compile.fullgraph=true
(the user asked for one whole graph), it is refused with one line. Commands after training
(export, test of a checkpoint, generate) and distillation teachers run the saved model eagerly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bigmodel_cli.errors import UserError, choices_text

MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
BACKENDS = ("inductor", "aot_eager", "eager")


@dataclass(frozen=True)
class CompileSettings:
    enabled: bool = False
    mode: str = "default"
    dynamic: bool | None = None
    fullgraph: bool = False
    backend: str = "inductor"

    @classmethod
    def from_config(cls, config) -> CompileSettings:
        """From a run config (a DictConfig, or a checkpoint's plain dict; configs saved before
        compile existed have no `compile` node: eager)."""
        node = dict(config.get("compile") or {})
        settings = cls(
            **{key: node[key] for key in ("enabled", "mode", "dynamic", "fullgraph", "backend") if key in node}
        )
        for key, value, valid in (("mode", settings.mode, MODES), ("backend", settings.backend, BACKENDS)):
            if value not in valid:
                raise UserError(
                    f"compile.{key}={value} is not a torch.compile {key}; valid choices: {choices_text(valid)}"
                )
        if settings.dynamic not in (None, True, False):
            raise UserError(f"compile.dynamic={settings.dynamic} should be true, false or null (dynamo decides)")
        return settings

    def arguments(self) -> dict:
        # torch.compile takes a mode for inductor only; "default" is its own default.
        mode = {"mode": self.mode} if self.mode != "default" else {}
        return {"backend": self.backend, "dynamic": self.dynamic, "fullgraph": self.fullgraph, **mode}


def is_compiled(model: nn.Module) -> bool:
    return getattr(model, "_compiled_call_impl", None) is not None


def compile_backbone(module, settings: CompileSettings) -> None:
    """Trace `module.backbone` on `module.example_input_array` (set by training/pieces.probe), then
    compile it in place; or train eagerly with one line, or a UserError (fullgraph)."""
    if not settings.enabled:
        return
    from torch._dynamo.utils import counters

    # Dynamo keeps one cache for every module's call (they share nn.Module._call_impl's code) and
    # stops compiling silently after 8 entries: a process that trains one model after another (a
    # sweep's jobs, the tests) would soon train eagerly. Each run starts from an empty cache.
    torch._dynamo.reset()
    backbone, example = module.backbone, module.example_input_array
    # The try traces only (backend="eager": no code generated): what fails to compile is dynamo's
    # capture. The cache is emptied after it, or the try's batch of 2 would make dynamo compile
    # training's graphs for dynamic shapes (slower kernels) at the first real batch.
    trial = torch.compile(backbone, **{**settings.arguments(), "backend": "eager", "mode": None})
    graphs, breaks = counters["stats"]["unique_graphs"], set(counters["unimplemented"])
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            trial(example)
        reason = None if counters["stats"]["unique_graphs"] > graphs else no_graph_reason(breaks)
    except Exception as exc:  # noqa: BLE001 - whatever fails here is torch.compile's: the eager probe passed
        reason = f"{type(exc).__name__}: {first_line(str(exc))}"
    finally:
        module.train(was_training)
        torch._dynamo.reset()
    if reason is None:
        backbone.compile(**settings.arguments())
        module.compiled = settings  # a spawned DDP rank compiles again (BackboneModule.setup)
        return
    name = type(backbone).__name__
    if settings.fullgraph:
        raise UserError(
            f"compile.fullgraph=true: torch.compile cannot capture {name} as one graph ({reason}); "
            f"fix: compile.fullgraph=false (the parts it cannot capture run eagerly), or compile=false"
        )
    print(f"compile: {name} trains eagerly, torch.compile captured nothing of it ({reason})")


def no_graph_reason(breaks_before: set) -> str:
    """Why dynamo captured no graph: the first new entry of its unsupported-code counter."""
    from torch._dynamo.utils import counters

    new = [key for key in counters["unimplemented"] if key not in breaks_before]
    return first_line(new[0]) if new else "no graph was captured"


def first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), text)[:200]


def recompile(module) -> None:
    """In a process that received the module pickled (a DDP spawn rank): pickling drops torch's
    compiled call (nn.Module.__getstate__), so the backbone is compiled again with its settings."""
    settings = getattr(module, "compiled", None)
    if settings is not None and not is_compiled(module.backbone):
        module.backbone.compile(**settings.arguments())
