"""Both matrices of the plan, cell by cell, written out here as the plan states them."""

from __future__ import annotations

import json

import pytest

from cli.main import main
from runbook.authority import completed_set, missing_roles
from runbook.matrix import phase_for_share, resolve
from runbook.policy import Policy

M = 60
# (trigger, phase) -> (mode, window seconds, approvers, extend_until seconds)
DECISIONS = {
    **{
        (t, p): ("auto", None, [], None)
        for t in ("error_rate", "p99_latency", "resource_exhaustion")
        for p in (5, 25, 50, 100)
    },
    ("gate_failure", 5): ("manual", 5 * M, [["sprint_dri"]], None),
    ("gate_failure", 25): ("manual", 2 * M, [["sprint_dri"]], None),
    ("gate_failure", 50): ("auto", None, [], None),
    ("gate_failure", 100): ("auto", None, [], None),
    ("quality_regression", 5): ("manual", 10 * M, [["qa_dri"]], 30 * M),
    ("quality_regression", 25): ("manual", 5 * M, [["qa_dri"]], None),
    ("quality_regression", 50): ("manual", 2 * M, [["qa_dri", "sprint_dri"]], None),
    ("quality_regression", 100): ("auto", None, [], None),
    **{
        ("operational_anomaly", p): ("manual", None, [["sprint_dri"]], None)
        for p in (5, 25, 50, 100)
    },
}
AUTHORITY = {
    "automated": ["system"] * 4,
    "performance_gates": [
        [["sprint_dri"]],
        [["sprint_dri"]],
        [["engineering_manager"]],
        [["engineering_manager"]],
    ],
    "quality_gates": [
        [["qa_dri"]],
        [["qa_dri"]],
        [["qa_dri", "sprint_dri"]],
        [["engineering_manager"]],
    ],
    "business_impact": [
        [["sprint_pm"]],
        [["sprint_pm"]],
        [["engineering_manager"]],
        [["vp_engineering"]],
    ],
}


def test_policy_show_json_has_every_cell_as_the_plan_says(
    policy: Policy, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "show", "policies/sprint-1.yaml", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 24
    seen = {}
    for row in rows:
        seen[(row["trigger"], row["phase"])] = (
            row["mode"],
            row["window_seconds"],
            row["approvers"],
            row["extend_until_seconds"],
        )
        assert row["default_action"] == "rollback"
    assert seen == DECISIONS


@pytest.mark.parametrize("authority", sorted(AUTHORITY))
def test_authority_matrix_cells(policy: Policy, authority: str) -> None:
    row = policy.authority_matrix[authority]
    assert [row[p] for p in (5, 25, 50, 100)] == AUTHORITY[authority]


def test_auto_cells_name_the_accountable_authority(policy: Policy) -> None:
    assert resolve(policy, "gate_failure", 50).accountable == [["engineering_manager"]]
    assert resolve(policy, "quality_regression", 100).accountable == [["engineering_manager"]]
    assert resolve(policy, "error_rate", 25).accountable == []


def test_policy_show_text_prints_both_tables(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "show", "policies/sprint-1.yaml"]) == 0
    out = capsys.readouterr().out
    assert "Decision matrix" in out and "Decision authority matrix" in out
    assert "VP Engineering" in out and "Auto rollback" in out


@pytest.mark.parametrize(
    ("share", "phase"),
    [(0, 5), (5, 5), (6, 25), (10, 25), (25, 25), (40, 50), (75, 100), (100, 100)],
)
def test_live_share_maps_to_the_stricter_phase(policy: Policy, share: int, phase: int) -> None:
    assert phase_for_share(policy, share) == phase


def test_two_person_set_needs_distinct_people(policy: Policy) -> None:
    sets = [["qa_dri", "sprint_dri"]]
    assert completed_set(policy, ["qa-dri"], sets) is None
    assert missing_roles(policy, ["qa-dri"], sets) == ["sprint_dri"]
    assert completed_set(policy, ["qa-dri", "dri-search"], sets) == ["qa_dri", "sprint_dri"]
    roster = {**policy.roster, "sprint_dri": ["qa-dri"]}
    alone = policy.model_copy(update={"roster": roster})
    assert completed_set(alone, ["qa-dri"], sets) is None
    assert completed_set(alone, ["qa-dri"], sets, distinct_people=False) == sets[0]
