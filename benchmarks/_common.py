"""Shared by the benchmark scripts: where the public data lives, and writing a section of docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("OPTKIT_SHARED", ROOT.parent / "shared")) / "benchmarks"
DOC = ROOT / "docs" / "benchmarks.md"

HEADER = """# Benchmarks

Every table below was written by a script in `benchmarks/`, on the machine named under it; rerun the
command shown with it to reproduce. Sections are replaced independently.
"""


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_section(key: str, markdown: str) -> None:
    """Replace (or append) the section marked `key` in docs/benchmarks.md."""
    text = DOC.read_text() if DOC.exists() else HEADER
    begin, end = f"<!-- begin {key} -->", f"<!-- end {key} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = (
        pattern.sub(lambda _: block, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + block + "\n"
    )
    DOC.parent.mkdir(parents=True, exist_ok=True)
    tmp = DOC.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(DOC)


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
