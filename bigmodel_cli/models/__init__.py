"""Backbones: plain nn.Modules built from plain arguments, one file per family.

Each class says which data modalities it can read in `modalities`; the runner checks that
before training so a model/data mismatch is one clear line, not a shape error mid-epoch.
"""
