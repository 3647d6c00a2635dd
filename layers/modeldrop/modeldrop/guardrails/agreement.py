"""Whether a shadow candidate's answer agrees with the live version's: equal JSON, numbers within a
tolerance (two builds of one model differ in the last bits of a float), else equal bytes."""

from __future__ import annotations

import json
import math
from typing import Any

# Absolute and relative: 1e-6 of a probability, or of a large regression output.
AGREEMENT_TOLERANCE = 1e-6


def answers_agree(live: bytes, candidate: bytes) -> bool:
    try:
        live_value, candidate_value = json.loads(live), json.loads(candidate)
    except ValueError:
        return live == candidate
    return _close(live_value, candidate_value)


def _close(left: Any, right: Any) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return math.isclose(left, right, rel_tol=AGREEMENT_TOLERANCE, abs_tol=AGREEMENT_TOLERANCE)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(_close(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_close(left[key], right[key]) for key in left)
    return bool(left == right)
