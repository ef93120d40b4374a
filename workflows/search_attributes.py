"""The custom search attributes a rollback shows in the Temporal Web UI and list filters."""

from typing import Any

from temporalio.common import SearchAttributeKey

DEPLOYMENT = SearchAttributeKey.for_keyword("Deployment")
CANARY_PHASE = SearchAttributeKey.for_int("CanaryPhase")
TRIGGER = SearchAttributeKey.for_keyword("Trigger")
ROLLBACK_STATE = SearchAttributeKey.for_keyword("RollbackState")
ROLLBACK_OUTCOME = SearchAttributeKey.for_keyword("RollbackOutcome")
"""`rolled back` only when every Phase 1 action is confirmed; `incomplete` otherwise."""
DECISION_BY = SearchAttributeKey.for_keyword("DecisionBy")
DRILL = SearchAttributeKey.for_bool("Drill")
TRAFFIC_REVERSION_SECONDS = SearchAttributeKey.for_float("TrafficReversionSeconds")
"""The plan's reversion measure: trigger → traffic reverted for an automated rollback, decision →
traffic reverted for a manual one."""

ALL: tuple[SearchAttributeKey[Any], ...] = (
    DEPLOYMENT,
    CANARY_PHASE,
    TRIGGER,
    ROLLBACK_STATE,
    ROLLBACK_OUTCOME,
    DECISION_BY,
    DRILL,
    TRAFFIC_REVERSION_SECONDS,
)
"""Registered by `rollback up` and the test servers (`--search-attribute NAME=TYPE`)."""


def cli_flags() -> list[str]:
    """`--search-attribute Deployment=Keyword …` for `temporal server start-dev`."""
    kinds = {"KEYWORD": "Keyword", "INT": "Int", "BOOL": "Bool", "DOUBLE": "Double"}
    flags = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}={kinds[key.indexed_value_type.name]}"]
    return flags
