"""The reliability table says what each case tried and whether it held, one row per case."""

from __future__ import annotations

import json
from pathlib import Path

from reliability.results import CaseResult, write_results


def test_results_are_written_as_a_table_per_group_and_as_json(tmp_path: Path) -> None:
    # Given two groups of cases, one of which did not hold and has an open reason with a column separator
    results = [
        CaseResult(
            group="Hostile HTTP",
            case="edge: negative Content-Length",
            expected="400",
            observed="400 'Bad request'",
            held=True,
            figures={"responses": 1},
        ),
        CaseResult(
            group="Faults",
            case="restart",
            expected="a final status",
            observed="Deploying\nafter 150 s | not final",
            held=False,
            open_reason="executions are not persisted",
        ),
    ]
    markdown, data = tmp_path / "RESULTS.md", tmp_path / "results.json"

    # When they are written
    write_results(results, {"load_seconds": 15}, markdown_path=markdown, json_path=data)

    # Then the markdown counts what held, has a table per group with one row per case, cells on one line
    text = markdown.read_text()
    assert "**1 of 2 cases held.**" in text
    assert "## Hostile HTTP" in text and "## Faults" in text
    assert "| edge: negative Content-Length | 400 | 400 'Bad request' | responses=1 | yes |" in text
    assert "| restart | a final status | Deploying after 150 s \\| not final |  | **no** |" in text
    # and the row that did not hold is listed as open with its reason
    assert "- **Faults / restart**: executions are not persisted" in text
    # and the JSON keeps every field of every case
    payload = json.loads(data.read_text())
    assert payload["held"] == 1 and payload["settings"] == {"load_seconds": 15}
    assert [case["case"] for case in payload["cases"]] == ["edge: negative Content-Length", "restart"]
    assert payload["cases"][1]["observed"] == "Deploying\nafter 150 s | not final"
