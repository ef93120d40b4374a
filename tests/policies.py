"""Test policies: the sprint-1 plan with a few values changed (short windows, short budgets)."""

from __future__ import annotations

from typing import Any

from runbook.policy import Policy
from runbook.schema import FILE


def edited(policy: Policy, changes: dict[str, Any]) -> Policy:
    """`{"decision_matrix.gate_failure.25.window": "1s"}`: each dotted path set to its value
    (list items by index), then validated like a policy file."""
    data = policy.model_dump(mode="json")
    for path, value in changes.items():
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return Policy.model_validate(data, context=FILE)
