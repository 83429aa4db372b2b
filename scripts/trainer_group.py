"""Write conf/trainer/default.yaml from the installed Lightning: every argument of
`pytorch_lightning.Trainer.__init__` is a key, with Lightning's own default and the first sentence of
its docstring as the comment, apart from the few values bigmodel sets (BIGMODEL, each with why) and
the arguments bigmodel itself passes (contracts.TRAINER_OWNED: callbacks, logger, plugins,
default_root_dir). tests/config/test_trainer_group.py fails when the file and this output differ,
so a Lightning upgrade that adds, drops or re-documents an argument is caught.

    python scripts/trainer_group.py          # print the file
    python scripts/trainer_group.py --write  # write it
"""

from __future__ import annotations

import inspect
import re
import sys
import textwrap
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PATH = ROOT / "conf" / "trainer" / "default.yaml"

# bigmodel's values where Lightning's default is not what a run here wants: (value, why).
BIGMODEL = {
    "max_epochs": (
        "${epochs_unless_steps:10,${.max_steps}}",
        "10, or no epoch limit when trainer.max_steps is set (then the steps end the run)",
    ),
    "min_epochs": (1, "at least one epoch even when early stopping fires at once"),
    "log_every_n_steps": (10, "small data sets have fewer than Lightning's 50 steps per epoch"),
    "gradient_clip_algorithm": ("norm", "Lightning's choice when clipping, spelled out for sweeps"),
    "deterministic": (
        "${oc.select:deterministic,false}",
        "the top-level deterministic=true sets it (bitwise-reproducible on the same hardware, slower on GPU)",
    ),
}
HEADER = """\
# Every argument of Lightning's Trainer, with Lightning's default unless bigmodel's is noted.
# Written by scripts/trainer_group.py from the installed Lightning; edit BIGMODEL there, not here.
# The accelerator group sets accelerator, devices, strategy, num_nodes, precision, sync_batchnorm;
# bigmodel passes callbacks (callbacks group), logger (logger group), plugins and default_root_dir.
_target_: pytorch_lightning.Trainer
"""


def meanings(doc: str) -> dict[str, str]:
    """Argument -> the first sentence of its entry in the docstring's Args section."""
    args = doc.split("Args:", 1)[1].split("Raises:", 1)[0]
    entries = re.split(r"\n\s{12}(?=\w+:)", "\n" + textwrap.dedent(args).replace("\n", "\n" + " " * 12))
    found = {}
    for entry in entries:
        name, _, text = entry.strip().partition(":")
        text = " ".join(text.split()).replace("``", "`")
        first = re.split(r"(?<=[a-z)`'])\. ", text + " ", maxsplit=1)[0].strip().rstrip(".")
        if name.isidentifier() and first:
            found[name] = first + "."
    return found


def render() -> str:
    import pytorch_lightning as pl

    parameters = [p for p in inspect.signature(pl.Trainer.__init__).parameters.values() if p.name != "self"]
    meaning = meanings(pl.Trainer.__init__.__doc__)
    from bigmodel_cli.config.contracts import TRAINER_OWNED as skip

    lines = [HEADER]
    for parameter in parameters:
        if parameter.name in skip:
            continue
        comment = meaning.get(parameter.name, "")
        value = parameter.default
        if parameter.name in BIGMODEL:
            value, why = BIGMODEL[parameter.name]
            comment += f" bigmodel: {why}."
        for line in textwrap.wrap(comment, 98):
            lines.append(f"# {line}\n")
        lines.append(yaml.safe_dump({parameter.name: value}, default_flow_style=False, width=1000))
    return "".join(lines)


if __name__ == "__main__":
    text = render()
    if "--write" in sys.argv:
        PATH.write_text(text)
        print(f"wrote {PATH}")
    else:
        print(text, end="")
