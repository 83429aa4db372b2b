"""The exit step (bigmodel_cli/cli/exit.py): Python's finalisation skips its collector passes over
torch's objects, and nothing the run left unreachable goes unfinalised."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import atexit, gc, sys
atexit.register(lambda: print("frozen", gc.get_freeze_count()))  # registered first, so it runs last
from bigmodel_cli.cli.main import main

class Holder:  # a cycle around a buffered file nobody closes
    def __init__(self, path):
        self.me = self
        self.file = open(path, "w")
        self.file.write("a line\\n" * 10000)

Holder(sys.argv[1])
main(["--version"])
"""


def test_bigmodel_exits_with_the_collector_done_and_every_unreachable_file_flushed(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "written")], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    frozen = int(out.stdout.split("frozen")[1])
    assert frozen > 1000  # the survivors are out of the collector's reach for the interpreter's teardown
    assert (tmp_path / "written").read_text() == "a line\n" * 10000  # the cycle was finalised first
