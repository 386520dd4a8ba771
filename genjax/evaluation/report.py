"""Results tables: rows of named values as CSV and as Markdown (for docs/ pages)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from genjax.runs.files import write_history_csv


def _cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, str):
        return value
    if fmt == "d" and isinstance(value, float):  # a mean of counts
        return format(value, ".1f")
    return format(value, fmt)


def markdown_table(rows: Sequence[dict], columns: Sequence[tuple[str, str, str]]) -> str:
    """A Markdown table of ``rows`` with ``columns`` = (key, title, format spec) each."""
    lines = ["| " + " | ".join(title for _, title, _ in columns) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|"]
    lines += ["| " + " | ".join(_cell(r.get(key), fmt) for key, _, fmt in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_tables(out: Path, stem: str, rows: Sequence[dict], columns: Sequence[tuple[str, str, str]],
                 header: str = "") -> None:
    """``out/stem.csv`` (every key of every row) and ``out/stem.md`` (``header``, then ``columns``)."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    write_history_csv(out / f"{stem}.csv", [{k: r.get(k) for k in keys} for r in rows])
    (out / f"{stem}.md").write_text((header + "\n\n" if header else "") + markdown_table(rows, columns))


def mean_std(values: Sequence[float | None]) -> tuple[float, float] | None:
    """(mean, sample standard deviation) of the values that are numbers; None if there are none."""
    xs = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not xs:
        return None
    m = sum(xs) / len(xs)
    return m, (math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0)
