"""What the gateway relays from Slack, made provable: the workspace checked against
ROLLBACK_SLACK_TEAM_ID, and each act signed with the gateway's own key
(ROLLBACK_GATEWAY_SIGNING_KEY) over what Slack told it (the user, the workspace, the message
clicked). The workflow checks that
signature against the policy's `identity.gateway_keys`: a client that talks to Temporal directly
cannot pass its word off as a Slack click."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from client.signing import KeySigner
from config.settings import Settings
from runbook.identity import Act, Proof, Statement, stamp

log = logging.getLogger("gateway.relay")


class Relay:
    def __init__(self, settings: Settings) -> None:
        self.team = settings.slack_team_id
        path = settings.gateway_signing_key
        self.signer = KeySigner.from_file(path) if path is not None else None
        if self.signer is None:
            log.warning(
                "no ROLLBACK_GATEWAY_SIGNING_KEY: Slack acts are relayed unsigned, and a rollback "
                "whose policy signs (identity.cli: signed) will not count them"
            )

    def workspace(self, payload: dict[str, Any]) -> tuple[str, str | None]:
        """The click's workspace, and why it is refused (None: it is the one served)."""
        team = str(
            (payload.get("team") or {}).get("id")
            or (payload.get("user") or {}).get("team_id")
            or ""
        )
        if self.team and team != self.team:
            log.warning("refused a Slack act from workspace %r (serving %r)", team, self.team)
            return team, (
                f"this click comes from another Slack workspace ({team or 'unknown'}) than the "
                "one the rollback engine serves: nothing was counted"
            )
        return team, None

    def proof(
        self,
        act: Act,
        *,
        person: str,
        deployment: str,
        slack_user: str,
        slack_team: str,
        made_at: datetime,
        request_id: str,
        choice: str = "",
        reason: str = "",
        window: str = "",
        message: str = "",
        rollback: str = "",
    ) -> Proof | None:
        """The gateway's signature over the act as Slack told it (None: no key configured)."""
        if self.signer is None:
            return None
        statement = Statement(
            act=act,
            person=person,
            deployment=deployment,
            rollback=rollback,
            window=window,
            choice=choice,
            reason=reason,
            made_at=stamp(made_at),
            request_id=request_id,
            via="slack",
            slack_user=slack_user,
            slack_team=slack_team,
            message=message,
        )
        text = statement.text()
        return Proof(kind="slack", statement=text, signature=self.signer.sign(text))
