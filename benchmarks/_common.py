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


#: the order of the sections in docs/benchmarks.md: the problems as README lists them, then the
#: cross-cutting parts; a key not listed here goes last, in the order it was first written
ORDER = (
    "tardiness",
    "tardiness-proof",
    "pod-packing",
    "expert-placement",
    "gpu-selection",
    "software-pipelining",
    "minmax",
    "kubernetes",
    "kubernetes-kube-default",
    "time limits",
    "fuzz",
    "checkers",
    "checkers-planted",
    "checkers-mutation",
    "batch",
)
_BLOCK = re.compile(r"<!-- begin (?P<key>[^>]+?) -->\n.*?<!-- end (?P=key) -->", re.S)


def write_section(key: str, markdown: str) -> None:
    """Replace (or add) the section marked `key` in docs/benchmarks.md, keeping ORDER."""
    text = DOC.read_text() if DOC.exists() else HEADER
    blocks = {m["key"]: m[0] for m in _BLOCK.finditer(text)}
    head = text[: m.start()] if (m := _BLOCK.search(text)) else text
    blocks[key] = f"<!-- begin {key} -->\n{markdown.strip()}\n<!-- end {key} -->"
    rank = {k: i for i, k in enumerate(ORDER)}
    keys = sorted(blocks, key=lambda k: rank.get(k, len(ORDER)))
    text = head.rstrip() + "\n\n" + "\n\n".join(blocks[k] for k in keys) + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    tmp = DOC.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(DOC)


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
