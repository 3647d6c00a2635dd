"""Which endpoint answers a request of a model: its live endpoint, or during a canary its candidate's.

Read from the model item (its `rollout` attribute, modeldrop.guardrails.state) and kept with it by the
Api function's record cache, so choosing costs one random draw.
"""

from __future__ import annotations

from dataclasses import dataclass

from modeldrop.guardrails.state import RolloutState
from modeldrop.records import ModelItem


@dataclass(frozen=True)
class Route:
    endpoint_name: str
    version: int | None
    is_candidate: bool


@dataclass(frozen=True)
class Routing:
    live: Route
    candidate: Route | None = None
    # Percent of requests (0-100) the candidate answers.
    candidate_weight: float = 0
    # Shadow: a copy of each request goes to the candidate, off the client's path.
    mirror: bool = False
    strategy: str | None = None

    @classmethod
    def of(cls, model: ModelItem) -> Routing:
        live = Route(model.endpoint_name, model.live_version, is_candidate=False)
        if not model.rollout:
            return cls(live)
        state = RolloutState.from_attribute(model.rollout)
        if not state.active:
            return cls(live)
        candidate = Route(state.candidate_endpoint_name, state.candidate_version, is_candidate=True)
        return cls(live, candidate, state.candidate_weight, state.mirror, state.strategy)

    def choose(self, draw: float) -> Route:
        """The route of one request; `draw` is uniform in [0, 1)."""
        if self.candidate is not None and draw * 100 < self.candidate_weight:
            return self.candidate
        return self.live
