"""Reading a policy file and refusing a bad one with the file, the field path and the reason."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from runbook.policy import STEP_IDS, Policy
from runbook.schema import FILE

DEFAULT_POLICY = Path(__file__).resolve().parent.parent / "policies" / "sprint-1.yaml"


@dataclass(frozen=True)
class Problem:
    path: str
    reason: str


class PolicyError(Exception):
    """A policy file that cannot be used; `str()` is one line per problem."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(
            "\n".join(
                f"{source}: {p.path}: {p.reason}" if p.path else f"{source}: {p.reason}"
                for p in problems
            )
        )


EXTENDS = "extends"
"""`extends: ../sprint-1.yaml`: the policy is that file with this one's top-level sections put
in place of its own (a driver example changes `targets` and keeps the rest of the plan)."""
MAX_EXTENDS = 8


MAX_BYTES = 1 << 20
"""A policy file is a few hundred lines: one over a megabyte is refused unread."""
MAX_DEPTH = 32
"""Nesting deeper than any policy needs is refused before anything walks it."""
MAX_ALIASES = 64
"""YAML aliases (`*name`) per file: enough for sharing a block, not for a billion laughs."""


def load_policy(path: str | Path) -> Policy:
    source = str(path)
    return parse_policy(read_text(Path(path), source), source, base=Path(path).resolve().parent)


def read_text(path: Path, source: str, where: str = "") -> str:
    """The file as UTF-8 text, or one line saying why it cannot be a policy."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_BYTES + 1)
    except OSError as error:
        what = f"cannot read {path}" if where else "cannot read"  # `extends` names the file
        raise PolicyError(source, [Problem(where, f"{what}: {error.strerror}")]) from None
    if len(raw) > MAX_BYTES:
        problem = Problem(where, f"larger than {MAX_BYTES // 1024} KiB: not a policy file")
        raise PolicyError(source, [problem])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        problem = Problem(
            where, f"not UTF-8: byte 0x{raw[error.start]:02x} on line {line} (save it as UTF-8)"
        )
        raise PolicyError(source, [problem]) from None


OVERRIDES = "overrides"
"""`overrides: {triggers.error_rate.sustain: 5s}`: dotted paths set after `extends` (a demo
policy shortens a few periods and keeps the rest of the plan)."""


def parse_policy(text: str, source: str = "<policy>", base: Path | None = None) -> Policy:
    """`base`: the directory an `extends:` path is relative to (the file's own)."""
    sections = _sections(text, source)
    overrides = sections.pop(OVERRIDES, None)
    data = _extended(sections, source, base, [])
    if overrides is not None:
        _override(data, overrides, source)
    try:
        policy = Policy.model_validate(data, context=FILE)
    except ValidationError as error:
        raise PolicyError(source, [_problem(e) for e in error.errors()]) from None
    problems = list(check_references(policy))
    if problems:
        raise PolicyError(source, problems)
    return policy


def _override(data: dict[str, Any], overrides: Any, source: str) -> None:
    if not isinstance(overrides, dict):
        raise PolicyError(source, [Problem(OVERRIDES, "must map dotted paths to values")])
    for path, value in overrides.items():
        *parents, last = str(path).split(".")
        node: Any = data
        try:
            for part in parents:
                node = node[int(part)] if isinstance(node, list) else node[_key(node, part)]
            if isinstance(node, list):
                node[int(last)] = value
            elif isinstance(node, dict):
                node[_key(node, last)] = value  # a field the schema does not know: refused below
            else:
                raise KeyError(last)
        except (KeyError, IndexError, ValueError, TypeError):
            problem = Problem(f"{OVERRIDES}.{path}", "names nothing in the policy it overrides")
            raise PolicyError(source, [problem]) from None


class StrictLoader(yaml.SafeLoader):
    """YAML as a policy file needs it: a key twice in one mapping, nesting deeper than
    `MAX_DEPTH` and more than `MAX_ALIASES` aliases are errors naming the line."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise yaml.MarkedYAMLError(
                    None, None, f"more than {MAX_ALIASES} aliases (*name)", mark
                )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.MarkedYAMLError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels", mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:
                continue  # an unhashable key: SafeLoader says so itself
            if first != key_node.start_mark.line + 1:
                raise yaml.MarkedYAMLError(
                    None,
                    None,
                    f"duplicate key {key!r} (first on line {first}): one of them would be lost",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def _key(node: dict[Any, Any], part: str) -> Any:
    """A dotted path's part as the mapping holds it: `5` is the phase cell 5 (YAML reads it
    as a number), unless the mapping has the text "5"."""
    if part not in node and part.lstrip("-").isdigit() and int(part) in node:
        return int(part)
    return part


def _sections(text: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.load(text, Loader=StrictLoader)  # a SafeLoader, stricter
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise PolicyError(source, [Problem("", f"invalid YAML: {where}{problem}")]) from None
    except RecursionError:
        raise PolicyError(source, [Problem("", "invalid YAML: nested too deeply")]) from None
    if not isinstance(data, dict):
        raise PolicyError(source, [Problem("", "must be a mapping of policy sections")])
    return data


def _extended(
    data: dict[str, Any], source: str, base: Path | None, seen: list[Path]
) -> dict[str, Any]:
    """The sections of the file `extends` names, with this file's sections in their place."""
    parent = data.pop(EXTENDS, None)
    if parent is None:
        return data
    if not isinstance(parent, str) or not parent:
        raise PolicyError(source, [Problem(EXTENDS, "must be the path of a policy file")])
    if base is None:
        raise PolicyError(source, [Problem(EXTENDS, "works only in a policy read from a file")])
    path = (base / parent).resolve()
    if path in seen or len(seen) >= MAX_EXTENDS:
        chain = " → ".join(str(p) for p in [*seen, path])
        raise PolicyError(source, [Problem(EXTENDS, f"policies extend each other: {chain}")])
    text = read_text(path, source, EXTENDS)
    inherited = _extended(_sections(text, str(path)), str(path), path.parent, [*seen, path])
    return {**inherited, **data}


def _problem(error: Any) -> Problem:
    loc = [str(part) for part in error["loc"] if not _is_internal_loc(part)]
    reason: str = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        reason = "is required"
    elif error["type"] in ("extra_forbidden", "unknown_field"):
        reason = "is not a known field"
        if error["type"] == "unknown_field":
            loc.append(str(error["ctx"]["field"]))
    return Problem(".".join(loc), reason)


def _is_internal_loc(part: Any) -> bool:
    # pydantic names union branches in the location ("list[list[str]]", "function-before[...]").
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def check_references(policy: Policy) -> Iterator[Problem]:
    """Everything that refers to something else must find it, and the matrices must be whole."""
    phases = policy.phases
    if phases != sorted(set(phases)) or not all(0 < p <= 100 for p in phases):
        yield Problem("phases", "must be distinct percentages between 1 and 100, ascending")

    roles = set(policy.roles)
    for role, members in policy.roster.items():
        if role not in roles:
            yield Problem(f"roster.{role}", f"unknown role (known: {_known(roles)})")
        for i, person in enumerate(members):
            if person not in policy.people:
                yield Problem(f"roster.{role}.{i}", f"unknown person {person!r}")
    for i, role in enumerate(policy.escalation_path):
        if role not in roles:
            yield Problem(f"escalation_path.{i}", f"unknown role {role!r}")

    for trigger_id, trigger in policy.triggers.items():
        where = f"triggers.{trigger_id}"
        if trigger.authority not in policy.authority_matrix:
            yield Problem(f"{where}.authority", f"no row {trigger.authority!r} in authority_matrix")
        if trigger.kind == "automated" and trigger.authority in policy.authority_matrix:
            cells = policy.authority_matrix[trigger.authority].values()
            if any(cell != "system" for cell in cells):
                yield Problem(
                    f"{where}.authority", "an automated trigger must be decided by system"
                )
        if trigger.initiated_by is not None:
            yield from _check_role_sets(f"{where}.initiated_by", trigger.initiated_by, roles)
        if trigger_id not in policy.decision_matrix:
            yield Problem("decision_matrix", f"missing row for trigger {trigger_id!r}")

    for trigger_id, row in policy.decision_matrix.items():
        where = f"decision_matrix.{trigger_id}"
        if trigger_id not in policy.triggers:
            yield Problem(where, f"unknown trigger (known: {_known(policy.triggers)})")
            continue
        trigger = policy.triggers[trigger_id]
        yield from _check_phase_keys(where, row.keys(), phases)
        for phase, cell in row.items():
            cell_path = f"{where}.{phase}"
            if trigger.kind == "automated" and cell.mode != "auto":
                yield Problem(
                    f"{cell_path}.mode", "an automated trigger must roll back automatically"
                )
            if cell.mode == "auto":
                if cell.window is not None:
                    yield Problem(f"{cell_path}.window", "an auto cell has no decision window")
                continue
            if cell.window is None and trigger.initiated_by is None:
                yield Problem(f"{cell_path}.window", "a manual cell needs a decision window")
            authority = policy.authority_matrix.get(trigger.authority, {}).get(phase)
            if authority == "system" and trigger.initiated_by is None:
                yield Problem(cell_path, f"manual, but {trigger.authority}.{phase} is system")
            if (cell.extend_by is None) != (cell.extend_until is None):
                yield Problem(cell_path, "extend_by and extend_until go together")
            if cell.extend_until and cell.window and cell.extend_until <= cell.window:
                yield Problem(f"{cell_path}.extend_until", "must be longer than the window")

    for authority_id, authority_row in policy.authority_matrix.items():
        where = f"authority_matrix.{authority_id}"
        yield from _check_phase_keys(where, authority_row.keys(), phases)
        for phase, authority_cell in authority_row.items():
            if authority_cell != "system":
                yield from _check_role_sets(f"{where}.{phase}", authority_cell, roles)
                for role_set in authority_cell:
                    for role in role_set:
                        if role in roles and not policy.roster.get(role):
                            yield Problem(
                                f"{where}.{phase}",
                                f"nobody holds role {role!r} in the roster: "
                                "a decision needing it could never be made",
                            )

    step_ids = [step.id for step in policy.steps()]
    if step_ids != list(STEP_IDS):
        yield Problem("procedure", f"must hold the plan's steps in order: {', '.join(STEP_IDS)}")

    for i, audience in enumerate(policy.notifications.audiences):
        if audience.approval is not None:
            if audience.approval not in policy.authority_matrix:
                yield Problem(
                    f"notifications.audiences.{i}.approval",
                    f"no row {audience.approval!r} in authority_matrix",
                )
            if audience.approval_window is None or audience.approval_default is None:
                yield Problem(
                    f"notifications.audiences.{i}",
                    "an approval needs approval_window and approval_default",
                )
    for name, trigger_id in policy.alerts.names.items():
        if trigger_id not in policy.triggers:
            yield Problem(f"alerts.names.{name}", f"unknown trigger {trigger_id!r}")
    for i, follow_up in enumerate(policy.follow_ups):
        if follow_up.owner not in roles:
            yield Problem(f"follow_ups.{i}.owner", f"unknown role {follow_up.owner!r}")
    yield from _check_identities(policy)


def _check_identities(policy: Policy) -> Iterator[Problem]:
    """Two people are two keys and two Slack users: one key (or one Slack id) listed for two
    people would let one person fill both seats of a two-person approval."""
    owners: dict[str, str] = {}
    slack: dict[str, str] = {}
    for person_id, person in policy.people.items():
        other = slack.setdefault(person.slack_user_id, person_id)
        if other != person_id:
            yield Problem(
                f"people.{person_id}.slack_user_id",
                f"{person.slack_user_id} is also {other}'s: one Slack user is one person",
            )
        for i, line in enumerate(person.signing_keys):
            key = " ".join(line.split()[:2])
            holder = owners.setdefault(key, person_id)
            if holder != person_id:
                yield Problem(
                    f"people.{person_id}.signing_keys.{i}",
                    f"the same key is {holder}'s: one key is one person",
                )


def _check_phase_keys(where: str, keys: Any, phases: list[int]) -> Iterator[Problem]:
    present = set(keys)
    for phase in phases:
        if phase not in present:
            yield Problem(where, f"missing phase {phase}")
    for phase in sorted(present - set(phases)):
        yield Problem(f"{where}.{phase}", f"unknown phase (phases: {phases})")


def _check_role_sets(where: str, role_sets: list[list[str]], roles: set[str]) -> Iterator[Problem]:
    if not role_sets:
        yield Problem(where, "must name at least one role")
    for i, role_set in enumerate(role_sets):
        if not role_set:
            yield Problem(f"{where}.{i}", "an approver set must name at least one role")
        if len(set(role_set)) != len(role_set):
            yield Problem(f"{where}.{i}", "names a role twice")
        for role in role_set:
            if role not in roles:
                yield Problem(f"{where}.{i}", f"unknown role {role!r} (known: {_known(roles)})")


def _known(names: Any) -> str:
    return ", ".join(sorted(names))
