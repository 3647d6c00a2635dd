"""One row per case, kept as JSON (results.json) and rendered as the table in RESULTS.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from benchmarks.common import machine_info
from benchmarks.run_all import markdown_table

RELIABILITY_DIR = Path(__file__).resolve().parent
RESULTS_MD = RELIABILITY_DIR / "RESULTS.md"
RESULTS_JSON = RELIABILITY_DIR / "results.json"
_CELL_LIMIT = 400


class CaseResult(BaseModel):
    """What was tried, what should happen, what did happen; `held` is the verdict."""

    group: str
    case: str
    expected: str
    observed: str
    held: bool
    figures: dict[str, Any] = Field(default_factory=dict)
    # Why a row that does not hold is not fixed (shown in the table's "open" list).
    open_reason: str | None = None


def _cell(value: Any) -> str:
    """A table cell: one line, no column separator, long reasons cut (the JSON keeps them whole)."""
    text = json.dumps(value, sort_keys=True) if isinstance(value, dict) else str(value)
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= _CELL_LIMIT else text[: _CELL_LIMIT - 1] + "…"


def _figures(figures: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in figures.items())


def render_markdown(results: list[CaseResult], settings: dict[str, Any], machine: dict[str, Any]) -> str:
    held = sum(result.held for result in results)
    lines = [
        "# Reliability: hostile inputs and faults on the local cloud",
        "",
        "Written by `make reliability` (`python -m reliability.run`); the same rows are in "
        "[results.json](results.json). Every case runs against a local cloud started for the run "
        "(`modeldrop local up` on free loopback ports, a temporary state dir).",
        "",
        f"**{held} of {len(results)} cases held.** Machine: {machine.get('cpus')} CPUs, "
        f"{machine.get('memory_gib')} GiB, Python {machine.get('python')}, {machine.get('date')}. "
        f"Settings: {_figures(settings)}.",
        "",
    ]
    groups: dict[str, list[CaseResult]] = {}
    for result in results:
        groups.setdefault(result.group, []).append(result)
    for group, rows in groups.items():
        lines += [f"## {group}", ""]
        table = [
            {
                "case": _cell(row.case),
                "expected": _cell(row.expected),
                "observed": _cell(row.observed),
                "figures": _cell(_figures(row.figures)),
                "held": "yes" if row.held else "**no**",
            }
            for row in rows
        ]
        lines += [markdown_table(table)]
    failing = [result for result in results if not result.held]
    lines += ["## Open", ""]
    if not failing:
        lines += ["Nothing: every case held.", ""]
    for result in failing:
        reason = result.open_reason or "not investigated yet"
        lines += [f"- **{result.group} / {result.case}**: {_cell(reason)}"]
    return "\n".join(lines).rstrip() + "\n"


def write_results(
    results: list[CaseResult],
    settings: dict[str, Any],
    markdown_path: Path = RESULTS_MD,
    json_path: Path = RESULTS_JSON,
) -> None:
    machine = machine_info()
    payload = {
        "machine": machine,
        "settings": settings,
        "held": sum(result.held for result in results),
        "cases": [result.model_dump() for result in results],
    }
    json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    markdown_path.write_text(render_markdown(results, settings, machine))
