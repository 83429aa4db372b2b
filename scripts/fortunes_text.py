"""The training quotations of data=fortunes as plain text, for masked-LM pretraining on the text a
classifier will read (domain-adaptive pretraining): exactly the quotations `bigmodel train
data=fortunes` trains on at its split_seed, none of its validation or test ones, written
`--per-file` to a file (data=text_corpus splits a corpus by file).

    python scripts/fortunes_text.py data/fortunes_text [data.root=... data.split_seed=...]
    bigmodel train experiment=fortunes_pretrain_bert      # with data/brown_text (scripts/brown_text.py)
"""

from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext
from pathlib import Path

from bigmodel_cli.errors import UserError


def convert(out_dir: str, overrides: list[str], per_file: int = 100) -> list[Path]:
    """Write <out_dir>/fortunes_<n>.txt, a blank line between quotations, from the training split of
    `bigmodel train data=fortunes <overrides>`; the paths written."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from bigmodel_cli.config.catalogue import conf_dir
    from bigmodel_cli.data.text import texts_and_labels
    from bigmodel_cli.training.pieces import build_datamodule

    # Called inside a composition already (the tests preparing a recipe's files): compose within it.
    within = GlobalHydra.instance().is_initialized()
    with nullcontext() if within else initialize_config_dir(str(conf_dir()), version_base=None):
        datamodule = build_datamodule(compose("train", ["data=fortunes", *overrides]).data)
    datamodule.setup("fit")
    texts, _ = texts_and_labels(datamodule.datasets["train"])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for number, start in enumerate(range(0, len(texts), per_file)):
        target = out / f"fortunes_{number:03d}.txt"
        target.write_text("\n\n".join(texts[start : start + per_file]) + "\n", encoding="utf-8")
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="where the .txt files go")
    parser.add_argument("overrides", nargs="*", help="data=fortunes settings, as for bigmodel train (data.root=...)")
    parser.add_argument("--per-file", type=int, default=100, help="quotations a file")
    args = parser.parse_args(argv)
    try:
        written = convert(args.out_dir, args.overrides, args.per_file)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} files of training quotations to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
