"""A virtual environment that is this one's site-packages minus scipy, matplotlib and scikit-learn:
what `pip install bigmodel-cli` (the base install, no extras) has on its start-up path, built
offline in a second.

    python scripts/base_install.py DIR     # prints DIR/bin/python

`python -m venv --without-pip DIR`, then one symlink in DIR's site-packages per entry of this
interpreter's site-packages (packages, their .dist-info, .pth files), except the hidden ones. So
the same wheels, byte for byte, and importlib.metadata sees no scipy/matplotlib/scikit-learn
distribution either (torchmetrics asks it), unlike an import blocker. `--system-site-packages` would
not do: it shows scipy again. DIR/bin/bigmodel is the console script on DIR's interpreter.
scripts/bench.py times `bigmodel train debug=fdr` and the import floor in it; tests/end_to_end/
test_base_install.py runs the default job there and checks nothing hidden was imported.
"""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
from pathlib import Path

HIDDEN = ("scipy", "matplotlib", "sklearn")
# Top-level names in site-packages that belong to the hidden distributions (and matplotlib's
# IPython backend, matplotlib_inline, which is nothing without it).
_HIDDEN_ENTRY = re.compile(r"^(scipy|matplotlib|matplotlib_inline|mpl_toolkits|pylab|sklearn|scikit_learn)([-._].*)?$")

CONSOLE_SCRIPT = """# -*- coding: utf-8 -*-
import re
import sys
from bigmodel_cli.cli.main import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""  # pip's console script for bigmodel = "bigmodel_cli.cli.main:main"


def hidden_entry(name: str) -> bool:
    return bool(_HIDDEN_ENTRY.match(name))


def make_base_venv(directory: Path) -> Path:
    """Builds (or reuses) the environment in directory; returns its python."""
    directory = Path(directory)
    python = directory / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(directory)], check=True, timeout=120)
    (site_packages,) = directory.glob("lib/python*/site-packages")
    source = Path(sysconfig.get_paths()["purelib"])
    for entry in source.iterdir():
        link = site_packages / entry.name
        if not hidden_entry(entry.name) and not link.exists():
            link.symlink_to(entry)
    script = directory / "bin" / "bigmodel"
    script.write_text(f"#!{python}\n{CONSOLE_SCRIPT}")
    script.chmod(0o755)
    return python


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[3].strip(), file=sys.stderr)
        return 2
    print(make_base_venv(Path(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
