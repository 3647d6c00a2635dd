"""`make demo` (python -m modeldrop_local.demo): real predictions through the whole local pipeline."""

from __future__ import annotations

import os
import re

import pytest
from modeldrop_local import demo

pytestmark = pytest.mark.e2e


def test_demo_deploys_and_prints_rest_predictions_next_to_in_process_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a process with no local endpoint configured (tests/conftest.py removes it)
    assert "AWS_ENDPOINT_URL" not in os.environ
    # When the demo runs
    exit_code = demo.main()
    # Then it succeeds, having followed the deployment and compared both predictions line by line
    output = capsys.readouterr().out
    assert exit_code == 0, output
    assert "v1 InService" in output
    rows = re.findall(r"^\s+\[[^\]]+\] → (\S+) \| (\S+)$", output, flags=re.MULTILINE)
    assert len(rows) == 4
    assert all(remote == local for remote, local in rows)
    assert "OK: REST predictions equal the in-process predictions" in output
    # And it left this process's environment as it found it
    assert "AWS_ENDPOINT_URL" not in os.environ
