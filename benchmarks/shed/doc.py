"""Writes one benchmark's figures into its subsection of docs/benchmarks.md, leaving the rest.

The file is shared: other sections (other benchmarks) and the other subsections of
"## Admission control (shed)" are kept as they are; only ``### <subsection>`` is replaced.
"""

from __future__ import annotations

from pathlib import Path

SECTION = "## Admission control (shed)"


def _split(text: str, heading: str, level: str) -> tuple[str, str, str]:
    """(before, the block starting at ``heading``, after); the block ends at the next heading
    of the same or a higher level."""
    start = text.find(heading + "\n")
    if start < 0:
        return text, "", ""
    end = len(text)
    for marker in ("\n## ", "\n### ") if level == "###" else ("\n## ",):
        found = text.find(marker, start + len(heading))
        if found >= 0:
            end = min(end, found + 1)
    return text[:start], text[start:end], text[end:]


def update_subsection(doc: Path, subsection: str, body: str) -> None:
    """Replace (or add) ``### subsection`` inside the shed section of ``doc``."""
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    before, section, after = _split(text, SECTION, "##")
    if not section:
        before, section = before.rstrip("\n") + "\n\n", SECTION + "\n\n"
    heading = f"### {subsection}"
    block = f"{heading}\n\n{body.strip()}\n\n"
    s_before, old, s_after = _split(section, heading, "###")
    section = s_before + block + s_after if old else section.rstrip("\n") + "\n\n" + block
    doc.write_text(before + section.rstrip("\n") + "\n" + ("\n" + after if after else ""))
