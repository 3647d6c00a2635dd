"""EventBridge → Lambda: the rules read from the template, recorded in moto's EventBridge, delivered by
the local cloud.

A function's `Type: EventBridgeRule` (or `CloudWatchEvent`, its older name) event is a rule on the
default bus whose target is that function (SAM's event source: AWS SAM Developer Guide,
"EventBridgeRule", sam-property-function-eventbridgerule). moto records rules, but delivers to its
own Lambda backend, which holds no function here; so the local cloud publishes the events AWS services
would send (the Model Registry's, model_registry.py) to `EventRules.publish`, which matches them with
moto's own EventBridge pattern engine (moto/events/models.py `EventPattern`: exact values, prefix, suffix,
anything-but, numeric, exists, $or) and invokes each matching rule's function asynchronously, the way
EventBridge invokes a Lambda target.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from moto.events.models import EventPattern

if TYPE_CHECKING:  # stack.py reads the rules with this module: no import at run time
    from modeldrop_local.template import Resolver

logger = logging.getLogger(__name__)
EVENT_SOURCE_TYPES = ("EventBridgeRule", "CloudWatchEvent")


@dataclass(frozen=True)
class EventRule:
    """One rule of the default event bus whose target is a template function."""

    name: str
    pattern: dict[str, Any]
    function: str
    function_arn: str

    def matches(self, event: dict[str, Any]) -> bool:
        return bool(EventPattern.load(json.dumps(self.pattern)).matches_event(event))  # type: ignore[arg-type]


def function_rules(resolver: Resolver, logical_id: str, resource: dict[str, Any]) -> list[EventRule]:
    """The EventBridge rule events of one AWS::Serverless::Function, resolved."""
    rules = []
    for event_id, event in resource.get("Properties", {}).get("Events", {}).items():
        if event.get("Type") not in EVENT_SOURCE_TYPES:
            continue
        properties = resolver.resolve(event.get("Properties", {}))
        bus = properties.get("EventBusName", "default")
        if bus != "default":
            # Only AWS services' events reach the local cloud, and they arrive on the default bus.
            raise ValueError(f"{logical_id}.{event_id}: only the default event bus runs locally, not {bus}")
        rules.append(
            EventRule(
                # SAM names the rule after the stack, the function and the event (plus a hash on AWS).
                name=str(
                    properties.get("RuleName") or f"{resolver.refs['AWS::StackName']}-{logical_id}{event_id}"
                )[:64],
                pattern=dict(properties["Pattern"]),
                function=resolver.refs[logical_id],
                function_arn=resolver.attributes[(logical_id, "Arn")],
            )
        )
    return rules


def record_rules(events: Any, rules: Iterable[EventRule]) -> None:
    """Record the rules and their targets in moto's EventBridge too, so ListRules shows them."""
    for rule in rules:
        events.put_rule(Name=rule.name, EventPattern=json.dumps(rule.pattern), State="ENABLED")
        events.put_targets(Rule=rule.name, Targets=[{"Id": rule.function, "Arn": rule.function_arn}])


class EventRules:
    """Delivers published events to the functions of the rules they match."""

    def __init__(self, rules: list[EventRule], invoke: Callable[[str, bytes], Any]) -> None:
        self.rules = rules
        self._invoke = invoke
        self.threads: list[threading.Thread] = []

    def publish(self, event: dict[str, Any]) -> list[str]:
        """Send the event to every matching rule's function, in a thread (EventBridge does not wait).

        Returns the names of the rules it matched.
        """
        matched = [rule for rule in self.rules if rule.matches(event)]
        payload = json.dumps(event).encode()

        def send(rule: EventRule) -> None:
            try:
                self._invoke(rule.function, payload)
            except Exception:  # a delivery thread must not die silently
                logger.exception("delivering %s to %s failed", event.get("detail-type"), rule.function)

        for rule in matched:
            thread = threading.Thread(target=send, args=(rule,), daemon=True, name=f"events-{rule.name}")
            self.threads = [t for t in self.threads if t.is_alive()] + [thread]
            thread.start()
        return [rule.name for rule in matched]
