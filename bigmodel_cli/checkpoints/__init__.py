"""Checkpoint files: safe loading (weights_only, one line per way a path can be wrong), atomic
saving, the newest good checkpoint of a run (files.py), and the Lightning CheckpointIO plugin that
makes the Trainer save and load the same way (plugin.py)."""
