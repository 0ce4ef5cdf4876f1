"""Output helpers shared by the commands: JSON for machines, aligned columns for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

__all__ = ["columns", "emit_json"]


def emit_json(value: object) -> None:
    """Print ``value`` as indented JSON on stdout (escaped to ASCII unless stdout is UTF-8)."""
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("_", "-")
    utf8 = encoding in ("utf-8", "utf8")
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=not utf8) + "\n")


def columns(
    header: Sequence[str], rows: Sequence[Sequence[object]], *, right: Sequence[int] = ()
) -> str:
    """Rows as text columns under ``header``; the columns numbered in ``right`` align right."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        parts = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)
