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


def section_text(key: str) -> str:
    """The current text of section `key` of docs/benchmarks.md ('' if none)."""
    text = DOC.read_text() if DOC.exists() else ""
    block = next((m[0] for m in _BLOCK.finditer(text) if m["key"] == key), "")
    return block


def section_rows(key: str, first_column: str) -> list[dict[str, str]]:
    """The rows, as {column: cell}, of the table in section `key` whose first column is named
    `first_column`. Scripts whose result cache is local (benchmarks/results is not in git) carry
    over the rows of the previous write that their cache does not hold."""
    tables: list[list[list[str]]] = []  # each table: its lines split into cells
    previous = ""
    for line in section_text(key).splitlines():
        if line.startswith("|"):
            if not previous.startswith("|"):
                tables.append([])
            if not set(line) <= set("|- "):  # not the separator line
                tables[-1].append([c.strip() for c in line.strip().strip("|").split("|")])
        previous = line
    for header, *rows in tables:
        if header[0] == first_column:
            return [dict(zip(header, cells)) for cells in rows]
    return []


def section_commands(key: str) -> list[str]:
    """The commands listed (indented by four spaces) in section `key`."""
    return [
        line.strip() for line in section_text(key).splitlines() if line.startswith("    .venv/")
    ]


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
