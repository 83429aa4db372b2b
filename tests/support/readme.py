"""The files README.md shows: an indented block whose first line is `# <path>.py` or `# <path>.yaml`
(after a blank line) is that file, so the tests can write and use exactly what the README shows."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
FILE_LINE = re.compile(r"^    # ([\w./-]+\.(?:py|yaml))$")


def readme_files(readme: Path = README) -> dict[str, str]:
    """path -> text of every file the README shows."""
    lines = readme.read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if FILE_LINE.match(line) and (i == 0 or not lines[i - 1].strip())]
    files = {}
    for i in starts:
        body = []
        for line in lines[i + 1 :]:
            next_file = FILE_LINE.match(line) and body and not body[-1]
            if (line.strip() and not line.startswith("    ")) or next_file:
                break  # the text after the block, or the next file's block
            body.append(line[4:])
        files[FILE_LINE.match(lines[i]).group(1)] = "\n".join(body).strip("\n") + "\n"
    return files


def write_readme_files(directory: Path) -> list[str]:
    """Write the README's files under directory; returns their paths."""
    files = readme_files()
    for name, text in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    return sorted(files)
