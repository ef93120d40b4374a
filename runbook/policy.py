"""The policy schema: the rollback plan as data.

Every threshold, window, role, budget and target of the plan lives in a policy file
(`policies/sprint-1.yaml`); these models only give it a shape. Cross-references (roles,
people, triggers, phases) are checked in `runbook.loading`, which reports them with the
field path where they went wrong.
"""

from __future__ import annotations

import math
import operator
from datetime import timedelta
from typing import Annotated, Any, Literal, get_args

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from runbook.durations import Duration, NonNegativeDuration, PositiveDuration
from runbook.identity import key_problem
from runbook.schema import PolicyModel, judged
from runbook.targets import HTTP_PATH_NAMES, TargetDrivers, missing_http_paths
from runbook.wording import FACTS, unknown_facts

Mode = Literal["auto", "manual"]
Action = Literal["rollback", "continue"]
Comparison = Literal[">", ">=", "<", "<=", "=="]


def compare(comparison: Comparison, value: float, threshold: float) -> bool:
    """`value <comparison> threshold`, `==` within float rounding: how every criterion, check,
    trigger condition and gate of a policy is judged."""
    if comparison == "==":
        return math.isclose(value, threshold, rel_tol=1e-9, abs_tol=1e-12)
    return {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}[comparison](
        value, threshold
    )


StepId = Literal[
    "emergency_stop",
    "configuration_revert",
    "health_validation",
    "deep_health_validation",
    "stakeholder_notification",
    "root_cause_analysis",
    "recovery_planning",
]
STEP_IDS: tuple[str, ...] = get_args(StepId)
"""The plan's seven steps, in order. Each is bound to one activity, so a policy may rename and
re-budget them but not invent new ones."""


def _cell_shorthand(value: Any) -> Any:
    """`5: auto` in YAML means `5: {mode: auto}`."""
    return {"mode": value} if isinstance(value, str) else value


def _role_sets_shorthand(value: Any) -> Any:
    """`sprint_dri` → [[sprint_dri]]; `[qa_dri, sprint_dri]` stays a list of one-role sets."""
    if isinstance(value, str) and value != "system":
        return [[value]]
    if isinstance(value, list):
        return [[item] if isinstance(item, str) else item for item in value]
    return value


RoleSets = list[list[str]]
"""Alternative approver sets: any one set completes a decision, and every role in that
set must approve (a set of two roles is two-person approval)."""


ROUTING_KEY = r"^([A-Za-z0-9]{32}|\$\{[A-Z_][A-Z0-9_]*\})$"
"""A PagerDuty Events API v2 integration key (32 characters), or `${ENV_VAR}` naming the worker's
environment variable that holds it (so the policy, and every rollback's history, holds no
secret)."""


class Person(PolicyModel):
    name: str
    slack_user_id: str = Field(pattern=r"^[UW][A-Z0-9]{2,}$")
    phone: str | None = None
    pager: str | None = None
    pagerduty_routing_key: str | None = Field(default=None, pattern=ROUTING_KEY)
    """Pages this person (through their PagerDuty service) when an escalation reaches a role of
    theirs."""
    signing_keys: list[str] = []
    """OpenSSH public key lines (`ssh-ed25519 AAAA… you@laptop`): an act of theirs from the CLI
    counts only when signed by one of these (under `identity.cli: signed`)."""

    @field_validator("signing_keys")
    @classmethod
    def _keys_are_openssh_lines(cls, keys: list[str], info: ValidationInfo) -> list[str]:
        if judged(info):
            for i, line in enumerate(keys):
                problem = key_problem(line)
                if problem is not None:
                    raise ValueError(f"signing_keys.{i}: {problem}")
        return keys


class Identity(PolicyModel):
    """How the engine knows who acted (README: "Who acted, proven")."""

    cli: Literal["signed", "asserted"] = "signed"
    """signed: a person's act from the CLI counts only when signed by one of their
    `signing_keys`; asserted: `--as` is taken as said, and every record says so (demo, tests).
    Drills are always asserted."""
    gateway_keys: list[str] = []
    """The gateway's public key lines (the public half of ROLLBACK_GATEWAY_SIGNING_KEY): a Slack
    act counts only when the gateway that verified Slack's signature and workspace signed it."""
    max_age: PositiveDuration = timedelta(minutes=10)
    """A signed act is judged only this long after it was made (a captured signature sent again
    later is refused)."""

    @field_validator("gateway_keys")
    @classmethod
    def _gateway_keys_are_openssh_lines(cls, keys: list[str], info: ValidationInfo) -> list[str]:
        if judged(info):
            for i, line in enumerate(keys):
                problem = key_problem(line)
                if problem is not None:
                    raise ValueError(f"{i}: {problem}")
        return keys


class Escalation(PolicyModel):
    """How an escalation climbs `escalation_path`: each role is told (Slack, and PagerDuty where a
    person has a routing key) and has `ack_within` to acknowledge before the next role is."""

    ack_within: PositiveDuration = timedelta(minutes=5)
    page_accountable: bool = False
    """Also page the accountable role of an automatic cell (it is always told)."""
    climb_again_for: list[str] = ["action"]
    """Reason kinds that climb the escalation path again even after the incident was
    acknowledged (`action`: a Phase 1 action refused or given up, traffic may still be on the
    canary); other reasons are told to whoever acknowledged. Kinds: budget, phase, failed,
    target, action, after, comms, decision_request, accountable."""
    severity: Literal["critical", "error", "warning", "info"] = "critical"


class Trigger(PolicyModel):
    name: str
    kind: Literal["automated", "manual"]
    authority: str = Field(description="the authority-matrix row that decides this trigger")
    condition: str
    metric: str | None = None
    comparison: Comparison | None = None
    threshold: float | None = None
    threshold_unit: str | None = None
    sustain: NonNegativeDuration = timedelta(0)
    response_target: PositiveDuration | None = None
    response_target_end: Literal["decision", "traffic_reverted"] | None = None
    """What `response_target` is measured to, from the trigger: the traffic reversion (the
    default for automated triggers) or the decision (the default for manual ones: "the Sprint
    DRI has 5 minutes to decide")."""
    initiated_by: Annotated[RoleSets | None, BeforeValidator(_role_sets_shorthand)] = None
    rationale: str = ""
    user_effect: str = "some searches on the canary behaved unexpectedly"
    """What users of the canary saw, in plain words (the `{user_effect}` of messages)."""

    def response_end(self) -> Literal["decision", "traffic_reverted"]:
        if self.response_target_end is not None:
            return self.response_target_end
        return "traffic_reverted" if self.kind == "automated" else "decision"


class Cell(PolicyModel):
    """One cell of the decision matrix."""

    mode: Mode
    window: PositiveDuration | None = None
    default: Action = "rollback"
    extend_by: PositiveDuration | None = None
    extend_until: PositiveDuration | None = None


DecisionRow = dict[int, Annotated[Cell, BeforeValidator(_cell_shorthand)]]
AuthorityCell = Annotated[Literal["system"] | RoleSets, BeforeValidator(_role_sets_shorthand)]


class Decisions(PolicyModel):
    """How decision windows behave beyond what the matrices say."""

    after_deny_watch: PositiveDuration
    after_rollback_watch: PositiveDuration
    deciders_are_distinct_people: bool = True


class Step(PolicyModel):
    id: StepId
    name: str
    budget: PositiveDuration
    actions: list[str] = []
    commands: list[str] = []
    retry_for: PositiveDuration | None = None
    """Steps that act (Phase 1): how long each of the step's actions is retried past the budget
    before the engine gives up on it (it escalates when the budget passes either way). None:
    four hours, the plan's stability watch."""


class Phase(PolicyModel):
    id: str
    name: str
    budget: PositiveDuration | None = None
    steps: list[Step]


class HealthCriterion(PolicyModel):
    id: str
    name: str
    metric: str
    comparison: Comparison
    value: float
    relative_to_baseline: bool = False
    within: PositiveDuration


class SmokeTest(PolicyModel):
    id: str
    name: str
    path: str
    expect_status: int = 200


class QualityCheck(PolicyModel):
    id: str
    name: str
    metric: str
    at_least: float | None = None
    at_most: float | None = None


class DeepValidation(PolicyModel):
    smoke_tests: list[SmokeTest]
    quality: list[QualityCheck]
    observe_for: NonNegativeDuration = timedelta(0)


class Audience(PolicyModel):
    id: str
    name: str
    channel: str
    when: Literal["always", "business_impact", "sla_breach"]
    content: str
    approval: str | None = Field(
        default=None, description="authority-matrix row that must approve the wording"
    )
    approval_window: PositiveDuration | None = None
    approval_default: Literal["send", "hold"] | None = None
    template: str | None = None
    """The message, in Slack mrkdwn, with `{fact}` placeholders (runbook/wording.py lists them);
    None: a plain summary of the facts."""

    @model_validator(mode="after")
    def _template_names_known_facts(self, info: ValidationInfo) -> Audience:
        if not judged(info):
            return self
        unknown = unknown_facts(self.template) if self.template else []
        if unknown:
            raise ValueError(
                f"template names unknown fact(s) {', '.join(unknown)} (known: {', '.join(FACTS)})"
            )
        return self


class Impact(PolicyModel):
    """Thresholds that decide whether business impact or an SLA breach occurred."""

    business_impact_affected_share: float = Field(gt=0, le=1)
    sla_breach_metric: str
    sla_breach_below: float


class Notifications(PolicyModel):
    channel: str
    audiences: list[Audience]
    impact: Impact


class ResponseTarget(PolicyModel):
    id: str
    name: str
    start: Literal["trigger", "decision"]
    end: Literal["decision", "traffic_reverted", "stabilized", "first_notification"]
    within: PositiveDuration
    applies_to: Literal["any", "auto", "manual"] = "any"


class RecoveryTarget(PolicyModel):
    id: str
    name: str
    description: str
    threshold: float | None = None
    over: Duration | None = None
    measure: Literal["affected_share", "cache_flush_integrity"] | None = Field(
        default=None,
        description="measured by the rollback itself: the share of queries affected (below "
        "`threshold`), or that the cache flush changed no other database",
    )


class FollowUp(PolicyModel):
    id: str
    name: str
    after: PositiveDuration
    owner: str = Field(description="role that owns the follow-up")
    actions: list[str]
    check: Literal["acknowledge", "baseline", "no_new_incident"] = "acknowledge"
    """acknowledge: the owner confirms it is done; baseline: every health criterion holds;
    no_new_incident: no trigger for the deployment since the rollback."""
    remind_after: PositiveDuration | None = None
    escalate_after: PositiveDuration | None = None


class AlertRouting(PolicyModel):
    """How an alert finds its deployment and trigger: labels first, then the alert's name."""

    deployment_label: str = "deployment"
    trigger_label: str = "trigger"
    names: dict[str, str] = {}
    """alertname → trigger id, for alerts that carry no trigger label."""
    blind_spots: list[str] = ["DatasourceNoData", "DatasourceError"]
    """alertnames that mean the metrics could not be read (Grafana's, and `absent()` rules):
    a monitoring blind spot for the deployment, never a breach, never a rollback."""


class Targets(PolicyModel):
    """Where the steps act. What Phase 1 acts on (`services_to_stop`, `early_stop_field`,
    `flags_to_disable`) and, per kind of action, the driver that does it (`drivers`,
    runbook/targets.py).

    The paths are the http driver's, on each target's base URL (the `ROLLBACK_…_URL` settings):
    `{deployment}`, `{service}` and `{flag}` are replaced; the answers are the simulator's JSON
    (a split is `{treatment, control}`, a flag `{enabled}`, a service `{status}`). A path is
    needed only where its driver is http; `logs` (Step 6) is always read over http.
    """

    traffic_split: str | None = None
    configuration: str | None = None
    early_stop_field: str
    service: str | None = None
    service_stop: str | None = None
    services_to_stop: list[str]
    feature_flag: str | None = None
    flags_to_disable: list[str]
    logs: str
    drivers: TargetDrivers = TargetDrivers()

    @model_validator(mode="after")
    def _http_drivers_have_paths(self, info: ValidationInfo) -> Targets:
        if not judged(info):
            return self
        problems = missing_http_paths(self.drivers, self.model_dump(include=set(HTTP_PATH_NAMES)))
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _query_shorthand(value: Any) -> Any:
    """`error_rate: total.error_rate` in YAML means `{query: total.error_rate}`."""
    return {"query": value} if isinstance(value, str) else value


class MetricQuery(PolicyModel):
    query: str
    """A dotted path into the JSON answer (http_json) or a PromQL instant query (prometheus);
    `{deployment}` (and `{variant}` among `variants`) are replaced."""
    scale: float = 1.0
    """The answer is multiplied by this (a percentage read as a ratio: 0.01)."""


MetricQueries = dict[str, Annotated[MetricQuery, BeforeValidator(_query_shorthand)]]


class MetricsSource(PolicyModel):
    url: str | None = None
    """http_json: the JSON document's path on ROLLBACK_METRICS_URL, `{deployment}` replaced."""
    metrics: MetricQueries
    """By metric name, as health_criteria, deep_validation.quality and notifications.impact
    name them."""
    baselines: MetricQueries = {}
    """The baseline of a metric that a `relative_to_baseline` criterion compares against."""
    variants: MetricQueries = {}
    """One variant's figures (`{variant}`: treatment or control), for the root cause analysis."""
    alert_rules: MetricQueries = {}
    """prometheus only: by metric name, PromQL over every deployment at once that keeps the
    `deployment` label (no `{deployment}`). `rollback rules` compares it with each automated
    trigger's threshold, for the trigger's sustain, in a Prometheus alerting rule."""


class Metrics(PolicyModel):
    provider: Literal["http_json", "prometheus"]
    http_json: MetricsSource | None = None
    prometheus: MetricsSource | None = None

    @model_validator(mode="after")
    def _provider_is_described(self, info: ValidationInfo) -> Metrics:
        if not judged(info):
            return self
        source = getattr(self, self.provider)
        if source is None:
            raise ValueError(f"provider is {self.provider}, but there is no {self.provider} block")
        if self.provider == "http_json" and not source.url:
            raise ValueError("the http_json block needs `url`, the JSON document's path")
        if self.http_json is not None and self.http_json.alert_rules:
            raise ValueError("alert_rules are PromQL: they belong in the prometheus block")
        return self

    def source(self) -> MetricsSource:
        source: MetricsSource | None = getattr(self, self.provider)
        assert source is not None  # checked when the policy was read
        return source


class Derived(PolicyModel):
    """A figure the canary watch judges that the metrics provider does not give as such:
    one variant's figure (`metric` + `variant`), a figure relative to its baseline
    (`relative_to_baseline`, the live figure over the baseline, minus one), or the largest of
    several (`largest_of`: the worst shard's CPU or memory)."""

    metric: str | None = None
    variant: Literal["treatment", "control"] | None = None
    relative_to_baseline: str | None = None
    baseline: Literal["control", "captured"] = "control"
    """`control`: the control group's figure read at the same moment (the metric's `variants`
    query with variant control); `captured`: the figure the watch read when it started, before
    the canary's traffic grew (kept for the watch's whole life)."""
    largest_of: list[str] = []

    @model_validator(mode="after")
    def _one_kind(self, info: ValidationInfo) -> Derived:
        if not judged(info):
            return self
        kinds = [
            self.variant is not None or self.metric is not None,
            self.relative_to_baseline is not None,
            bool(self.largest_of),
        ]
        if sum(kinds) != 1:
            raise ValueError(
                "give exactly one of: metric with variant, relative_to_baseline, largest_of"
            )
        if (self.metric is None) != (self.variant is None):
            raise ValueError("metric and variant go together (one variant's figure)")
        return self

    def reads(self) -> list[str]:
        """The provider's metrics this figure is computed from."""
        if self.largest_of:
            return list(self.largest_of)
        return [self.relative_to_baseline or self.metric or ""]


class Gate(PolicyModel):
    """A success gate: it passes while `metric comparison threshold` holds. A primary gate
    failing for `sustain` is Trigger 4 (gate failure); the others are only shown."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,40}$")
    name: str
    metric: str
    comparison: Comparison
    threshold: float
    sustain: NonNegativeDuration = timedelta(0)
    primary: bool = True


class Watch(PolicyModel):
    """The canary watch (workflows/canary_watch.py): every `interval` it reads the metrics and
    judges each trigger that has a metric, comparison and threshold, and each success gate,
    against its sustain period."""

    interval: PositiveDuration = timedelta(seconds=15)
    unreadable_intervals: int = Field(default=3, ge=1)
    """This many intervals without a reading of a watched figure is a monitoring blind spot."""
    bake_time: PositiveDuration = timedelta(hours=1)
    """At 100 % and healthy this long, the canary is done: the watch ends."""
    derived: dict[str, Derived] = {}
    gates: list[Gate] = []
    gate_trigger: str = "gate_failure"
    """The trigger a failing primary gate raises."""


class Policy(PolicyModel):
    version: Literal[1]
    name: str
    service: str
    phases: list[int] = Field(min_length=1)
    roles: dict[str, str]
    people: dict[str, Person]
    roster: dict[str, list[str]]
    escalation_path: list[str]
    escalation: Escalation = Escalation()
    identity: Identity | None = None
    """None: a policy recorded before identity existed, judged as it was then (asserted)."""
    triggers: dict[str, Trigger]
    decision_matrix: dict[str, DecisionRow]
    authority_matrix: dict[str, dict[int, AuthorityCell]]
    decisions: Decisions
    procedure: list[Phase]
    health_criteria: list[HealthCriterion]
    deep_validation: DeepValidation
    notifications: Notifications
    response_targets: list[ResponseTarget]
    recovery_targets: list[RecoveryTarget]
    follow_ups: list[FollowUp]
    alerts: AlertRouting = AlertRouting()
    targets: Targets | None = None
    metrics: Metrics | None = None
    watch: Watch = Watch()

    @model_validator(mode="after")
    def _metrics_cover_every_check(self, info: ValidationInfo) -> Policy:
        if not judged(info):
            return self
        if self.metrics is None:
            return self
        source = self.metrics.source()
        where = f"metrics.{self.metrics.provider}"
        needed = {
            *(f"metrics.{c.metric}" for c in self.health_criteria),
            *(f"baselines.{c.metric}" for c in self.health_criteria if c.relative_to_baseline),
            *(f"metrics.{q.metric}" for q in self.deep_validation.quality),
        }
        defined = {f"metrics.{m}" for m in source.metrics} | {
            f"baselines.{m}" for m in source.baselines
        }
        missing = sorted(needed - defined)
        if missing:
            raise ValueError(
                f"{where} has no query for {', '.join(missing)} "
                "(named by health_criteria or deep_validation.quality)"
            )
        return self

    @model_validator(mode="after")
    def _watch_can_read_what_it_judges(self, info: ValidationInfo) -> Policy:
        if not judged(info):
            return self
        # Only a policy that has a `watch` section: one recorded in a rollback's history before
        # the watch existed must still decode (its run never starts a watch).
        if self.metrics is None or "watch" not in self.model_fields_set:
            return self
        problems = watch_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _approvals_name_an_authority(self, info: ValidationInfo) -> Policy:
        if not judged(info):
            return self
        for i, audience in enumerate(self.notifications.audiences):
            if audience.approval is None:
                continue
            where = f"notifications.audiences.{i}"
            row = self.authority_matrix.get(audience.approval)
            if row is None:
                raise ValueError(
                    f"{where}.approval: {audience.approval!r} is not a row of authority_matrix "
                    f"({', '.join(self.authority_matrix)})"
                )
            if any(row.get(phase) in (None, "system") for phase in self.phases):
                raise ValueError(
                    f"{where}.approval: authority_matrix.{audience.approval} must name people "
                    "for every phase"
                )
            if audience.approval_window is None or audience.approval_default is None:
                raise ValueError(f"{where}: an approval needs approval_window and approval_default")
        return self

    def steps(self) -> list[Step]:
        return [step for phase in self.procedure for step in phase.steps]

    def step(self, step_id: str) -> Step:
        for step in self.steps():
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def people_with_role(self, role: str) -> list[str]:
        return list(self.roster.get(role, []))

    def roles_of(self, person: str) -> frozenset[str]:
        return frozenset(role for role, members in self.roster.items() if person in members)

    def signed(self, drill: bool = False) -> bool:
        """Whether a person's act from the CLI must be signed (never in a drill, never under a
        policy recorded before identity existed)."""
        return self.identity is not None and self.identity.cli == "signed" and not drill

    def person_by_slack_id(self, slack_user_id: str) -> str | None:
        for person_id, person in self.people.items():
            if person.slack_user_id == slack_user_id:
                return person_id
        return None

    def role_name(self, role: str) -> str:
        return self.roles.get(role, role)


def watched_metrics(policy: Policy) -> dict[str, str]:
    """Every figure the canary watch judges, with who asks for it (a trigger, a gate)."""
    named = {
        t.metric: f"triggers.{tid}"
        for tid, t in policy.triggers.items()
        if t.metric and t.comparison and t.threshold is not None
    }
    named |= {g.metric: f"watch.gates.{g.id}" for g in policy.watch.gates}
    return named


def watch_problems(policy: Policy) -> list[str]:
    """What the canary watch could not read, as `where: what`."""
    assert policy.metrics is not None
    source = policy.metrics.source()
    where = f"metrics.{policy.metrics.provider}"
    problems = []
    if policy.watch.gates and policy.watch.gate_trigger not in policy.triggers:
        problems.append(f"watch.gate_trigger: {policy.watch.gate_trigger!r} is not a trigger")
    for metric, asker in watched_metrics(policy).items():
        derived = policy.watch.derived.get(metric)
        if derived is None:
            if metric not in source.metrics:
                problems.append(
                    f"{asker}: the watch reads {metric!r}, but {where}.metrics has no query for "
                    "it and watch.derived does not compute it"
                )
            continue
        for read in derived.reads():
            if read not in source.metrics:
                problems.append(f"watch.derived.{metric}: {where}.metrics has no {read!r}")
        needs_variant = derived.variant is not None or (
            derived.relative_to_baseline is not None and derived.baseline == "control"
        )
        base = derived.metric or derived.relative_to_baseline
        if needs_variant and base is not None and base not in source.variants:
            problems.append(
                f"watch.derived.{metric}: {where}.variants has no {base!r} (one variant's figure)"
            )
    return problems
