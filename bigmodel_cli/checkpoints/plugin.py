"""Lightning's CheckpointIO with bigmodel's safe save and load. A module-level class (not one made
inside a function) so strategies that pickle the trainer, like ddp_spawn, can send it to workers."""

from __future__ import annotations

from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from bigmodel_cli.checkpoints.files import atomic_save, read_checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """Saves atomically (temp file, fsync, rename) and loads with weights_only=True."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        atomic_save(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only=None):
        return read_checkpoint(path, map_location or "cpu")
