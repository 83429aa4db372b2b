"""Lightning strategies that need Python objects a YAML file cannot hold."""

from __future__ import annotations

from pytorch_lightning.strategies import DDPStrategy as LightningDDP

from bigmodel_cli.config.instantiate import (
    active_extra_prefixes,
    allowed_prefixes,
    check_class_names,
    how_to_fix,
    locate_allowed,
)
from bigmodel_cli.errors import UserError


def wrap_classes(auto_wrap, extra_prefixes=()) -> set[type]:
    """The module classes auto_wrap names, each checked like a `_target_` (by what it resolves to,
    against the allowlist plus allow_targets) before it is used."""
    refused, fixes = check_class_names(auto_wrap, "trainer.strategy.auto_wrap", extra_prefixes)
    if refused:
        raise UserError(
            f"refusing {'; '.join(refused)} (allowed prefixes: "
            f"{', '.join(allowed_prefixes(extra_prefixes))}); fix: {how_to_fix(fixes)}"
        )
    return {locate_allowed(name, extra_prefixes)[0] for name in auto_wrap}


def fsdp(auto_wrap: list[str], timeout_s: float | None = None, **kwargs):
    """Lightning's FSDPStrategy with the named module classes (e.g. transformer blocks) as units.
    The names were checked with the config's `_target_`s; they are checked again here (against the
    allow_targets of the instantiate call in progress), as this is where they are imported."""
    from datetime import timedelta

    from pytorch_lightning.strategies import FSDPStrategy

    if timeout_s is not None:
        kwargs["timeout"] = timedelta(seconds=float(timeout_s))
    return FSDPStrategy(auto_wrap_policy=wrap_classes(auto_wrap, active_extra_prefixes()), **kwargs)


# Seconds a collective (all-reduce, broadcast, barrier) waits for the other ranks: a rank that died
# stops the others within this bound instead of leaving them hanging (torch's default is 30 min).
DEFAULT_TIMEOUT_S = 600


class DDPStrategy(LightningDDP):
    """Lightning's DDPStrategy, its process group made on the launch's store (`group_store`) where
    there is one. At module level, keeping Lightning's class name: ddp_spawn pickles the strategy."""

    def setup_distributed(self) -> None:
        import torch.distributed as dist

        store = group_store()
        if store is not None and not dist.is_initialized():
            self.set_world_ranks()
            device = self.root_device
            dist.init_process_group(
                self._get_process_group_backend(),
                store=store,
                rank=self.global_rank,
                world_size=self.world_size,
                timeout=self._timeout,
                device_id=device if device.type != "cpu" else None,
            )
        super().setup_distributed()  # Lightning's own set-up; it finds the group made


def ddp(timeout_s: float = DEFAULT_TIMEOUT_S, **kwargs):
    """DDP with a bounded process-group timeout, whose process group under torchrun keeps to its
    own restart attempt's keys (`attempt_store`)."""
    from datetime import timedelta

    return DDPStrategy(timeout=timedelta(seconds=float(timeout_s)), **kwargs)


def group_store():
    """Under torchrun/srun, the launch's rendezvous store (process_state.LAUNCH_STORE) with a prefix
    of its own for this process group; else None (Lightning makes its own). The store outlives each
    group: torchrun's agent store outlives the workers it restarts, rank 0's SLURM store the jobs of a
    sweep. Without the prefix a rank can read the address a dead predecessor (or the previous job's
    group) left there and give up connecting to it ("Connection refused") before rank 0 has written
    its own."""
    import os

    from bigmodel_cli.process_state import LAUNCH_STORE

    if "store" not in LAUNCH_STORE:
        return None
    import torch.distributed as dist

    LAUNCH_STORE["groups"] += 1
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return dist.PrefixStore(f"bigmodel/attempt_{attempt}/group_{LAUNCH_STORE['groups']}", LAUNCH_STORE["store"])


def auto(devices=1, num_nodes=1, accelerator="auto", timeout_s: float = DEFAULT_TIMEOUT_S):
    """Lightning's own choice ("auto") for one process; DDP with a bounded timeout for several
    (trainer.devices x trainer.num_nodes > 1, which is what Lightning's "auto" picks there too)."""
    return ddp(timeout_s) if processes(devices, accelerator) * int(num_nodes) > 1 else "auto"


def processes(devices, accelerator) -> int:
    """How many processes per node `devices` means (an int, a list of ids, "0,1", "auto" or -1)."""
    if isinstance(devices, int) and devices > 0:
        return devices
    if isinstance(devices, (list, tuple)) or hasattr(devices, "__len__") and not isinstance(devices, str):
        return len(devices)
    text = str(devices).strip()
    if text.isdigit():
        return int(text)
    if "," in text:
        return len([d for d in text.split(",") if d.strip()])
    import torch  # "auto" or -1: every visible GPU, else one process

    wants_gpu = str(accelerator) in ("gpu", "cuda", "auto")
    return max(1, torch.cuda.device_count()) if wants_gpu and torch.cuda.is_available() else 1
