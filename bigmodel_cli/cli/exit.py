"""Leave the process without the cycle collector's passes over torch's objects.

After `import torch, pytorch_lightning` the collector tracks about 370,000 objects, and Python's
finalisation collects them several times over while it clears the modules: about 1 s of every
bigmodel process (each run, each DDP rank, each tool), more than bigmodel's own share of start-up.
At exit, one collection finalises what the run left unreachable (a cycle holding an open file still
flushes and closes it), then gc.freeze() puts the survivors out of the collector's reach: they are
the modules' own objects, whose memory the operating system takes back with the process.
"""

from __future__ import annotations

import atexit
import gc


def collect_once_at_exit() -> None:
    """Register the exit step once; registered early, it runs after the handlers the run adds
    (Lightning's, torch's, the loggers'), which still see every object alive."""
    atexit.unregister(collect_once)
    atexit.register(collect_once)


def collect_once() -> None:
    gc.collect()
    gc.freeze()
