"""A bad policy file is refused with the file, the field path and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from runbook.loading import DEFAULT_POLICY, PolicyError, parse_policy

GOOD = DEFAULT_POLICY.read_text()


def broken(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "25: {mode: manual, window: 2m, default: rollback}",
            "25: {mode: manual, window: 0s, default: rollback}",
            "decision_matrix.gate_failure.25.window: must be a positive duration",
        ),
        (
            "window: 5m, default: rollback}",
            "window: soon, default: rollback}",
            "decision_matrix.gate_failure.5.window: must be a duration like 30s, 5m, 4h or 7d, "
            "got 'soon'",
        ),
        ("qa_dri: [qa-dri]", "qa_dri: [qa-drx]", "roster.qa_dri.0: unknown person 'qa-drx'"),
        (
            "50: [[qa_dri, sprint_dri]]",
            "50: [[qa_dri, sprint_dr]]",
            "authority_matrix.quality_gates.50.0: unknown role 'sprint_dr'",
        ),
        (
            "    5: {mode: manual, window: 5m, default: rollback}\n",
            "",
            "decision_matrix.gate_failure: missing phase 5",
        ),
        (
            "error_rate: {5: auto, 25: auto, 50: auto, 100: auto}",
            "error_rate: {5: auto, 25: {mode: manual, window: 1m}, 50: auto, 100: auto}",
            "decision_matrix.error_rate.25.mode: an automated trigger must roll back automatically",
        ),
        (
            "default: rollback, extend_by: 10m, extend_until: 30m}",
            "default: rollback, extend_by: 10m, extend_until: 5m}",
            "decision_matrix.quality_regression.5.extend_until: must be longer than the window",
        ),
        ("  after_deny_watch: 30m\n", "", "decisions.after_deny_watch: is required"),
        (
            "    kind: automated\n",
            "    kind: robotic\n",
            "triggers.error_rate.kind: Input should be 'automated' or 'manual'",
        ),
        ("slack_user_id: U0QADRI01", "slack_user_id: qa", "people.qa-dri.slack_user_id"),
        ("name: sprint-1", "name: [sprint", "invalid YAML: line"),
        (
            "  - id: recovery_planning\n",
            "  - id: recovery_plan\n",
            "procedure.2.steps.1.id: Input should be",
        ),
        ("  qa_dri: [qa-dri]\n", "  qa_dri: []\n", "nobody holds role 'qa_dri' in the roster"),
    ],
)
def test_bad_policy_names_file_field_and_reason(old: str, new: str, message: str) -> None:
    with pytest.raises(PolicyError) as raised:
        parse_policy(broken(old, new), "policies/x.yaml")
    text = str(raised.value)
    assert message in text
    assert text.startswith("policies/x.yaml: ")
    assert "Traceback" not in text


def test_policy_check_exits_2_with_the_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "x.yaml"
    bad.write_text(broken("window: 2m", "window: 0s"))
    assert main(["policy", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: decision_matrix.gate_failure.25.window: must be a positive duration" in err
    assert "Traceback" not in err


def test_policy_check_accepts_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", "policies/sprint-1.yaml"]) == 0
    assert "ok" in capsys.readouterr().out


def test_missing_file_and_non_mapping(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", str(tmp_path / "none.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    assert main(["policy", "check", str(listed)]) == 2
    assert "must be a mapping" in capsys.readouterr().err


# --- issue 21: strict policy files ---------------------------------------------------------


def refused(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """`rollback policy check` on it: exit 2 and one line naming the file, no traceback."""
    assert main(["policy", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err, err
    return err


def test_a_key_twice_is_refused_with_both_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A duplicated `qa_dri:` under `roster` was last-one-wins: the QA DRI became dri-search."""
    twice = tmp_path / "twice.yaml"
    lines = GOOD.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("  qa_dri: ["))
    first = next(i for i, line in enumerate(lines) if line.startswith("roster:")) + 1
    lines.insert(at + 1, "  qa_dri: [dri-search]")
    twice.write_text("\n".join(lines) + "\n")
    err = refused(twice, capsys)
    assert f"line {at + 2}" in err and "duplicate key 'qa_dri'" in err, err
    assert f"first on line {at + 1}" in err and first <= at + 1, err


def test_not_utf8_deep_nesting_aliases_and_size_are_refused_in_bounded_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(
        GOOD.encode("utf-8").replace(b"name: ", "name: Caf\xe9 ".encode("latin-1"), 1)
    )
    assert "not UTF-8: byte 0xe9 on line" in refused(latin, capsys)

    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nested deeper than" in refused(deep, capsys)

    laughs = tmp_path / "laughs.yaml"
    rows = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    rows += [
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    ]
    laughs.write_text("\n".join(rows) + "\n")
    assert "more than 64 aliases" in refused(laughs, capsys)

    huge = tmp_path / "huge.yaml"
    huge.write_text(GOOD + "#" + "x" * (1 << 20) + "\n")
    assert "larger than 1024 KiB" in refused(huge, capsys)


def test_overrides_address_a_numbered_matrix_cell(tmp_path: Path) -> None:
    """`decision_matrix.quality_regression.5.window` "named nothing": YAML reads 5 as a number."""
    demo = tmp_path / "demo.yaml"
    demo.write_text(
        f"extends: {DEFAULT_POLICY}\n"
        "overrides:\n"
        "  decision_matrix.quality_regression.5.window: 3m\n"
    )
    from runbook.loading import load_policy

    policy = load_policy(demo)
    assert policy.decision_matrix["quality_regression"][5].window is not None
    assert policy.decision_matrix["quality_regression"][5].window.total_seconds() == 180
