"""`rollback rules`: Prometheus alerting rules and the Alertmanager configuration, from a policy."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from cli.errors import UserError
from cli.policy_cmd import read_policy
from config.settings import Settings, load_settings
from runbook import alert_rules
from runbook.loading import PolicyError


def rules(
    out: Annotated[
        Path,
        typer.Option(
            metavar="DIR", help="directory for rules.yml and alertmanager.yml (created if missing)"
        ),
    ],
    policy: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="policy file [ROLLBACK_POLICY, policies/sprint-1.yaml]"),
    ] = None,
    gateway_url: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="the gateway's base URL as Alertmanager reaches it, e.g. http://gateway:8000 "
            "[ROLLBACK_GATEWAY_HOST and ROLLBACK_GATEWAY_PORT]",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="bearer token the gateway expects, written in the file [ROLLBACK_ALERTS_TOKEN]"
        ),
    ] = None,
    token_file: Annotated[
        str | None,
        typer.Option(
            metavar="PATH",
            help="instead of --token: the file holding it, as Alertmanager sees it "
            "(keeps the token out of alertmanager.yml)",
        ),
    ] = None,
) -> None:
    """Write Prometheus alert rules and an Alertmanager configuration from the policy.

    DIR/rules.yml: an alerting rule per automated trigger, threshold and `for:` from the policy.
    DIR/alertmanager.yml: a receiver posting the alerts to the gateway with its bearer token.

    Example: ROLLBACK_ALERTS_TOKEN=s3cret rollback rules --policy policies/sprint-1.yaml --out out
    """
    settings = load_settings()
    policy_file = policy or settings.policy
    loaded = read_policy(policy_file)
    problems = alert_rules.check(loaded)
    if problems:
        raise UserError(str(PolicyError(str(policy_file), problems)))
    url = gateway_url or default_gateway_url(settings)
    check_gateway_url(url, "--gateway-url" if gateway_url else "ROLLBACK_GATEWAY_HOST/PORT")
    if token and token_file:
        raise UserError("give --token or --token-file, not both")
    if not token_file:
        token = token or settings.alerts_token
        if not token:
            raise UserError(
                "no token for the gateway: give --token or --token-file, or set "
                "ROLLBACK_ALERTS_TOKEN (the gateway refuses alerts without it)"
            )

    rules_doc = alert_rules.prometheus_rules(loaded)
    manager_doc = alert_rules.alertmanager_config(loaded, url, token=token, token_file=token_file)
    make_directory(out)
    rules_path, manager_path = out / "rules.yml", out / "alertmanager.yml"
    write(rules_path, alert_rules.render(rules_doc, loaded))
    # A token written in the file makes it a secret: readable by its owner only.
    write(manager_path, alert_rules.render(manager_doc, loaded), private=token_file is None)

    written = [
        f"{rule['alert']} ({rule['labels'][loaded.alerts.trigger_label]}) for {rule['for']}"
        for rule in rules_doc["groups"][0]["rules"]
    ]
    typer.echo(f"wrote {rules_path}: {len(written)} alert rules: {', '.join(written)}")
    credential = f"token from {token_file}" if token_file else "token in the file, mode 600"
    typer.echo(
        f"wrote {manager_path}: receiver {alert_rules.RECEIVER} posts to "
        f"{alert_rules.webhook_url(url)} ({credential})"
    )


def default_gateway_url(settings: Settings) -> str:
    host = settings.gateway_host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.gateway_port}"


def check_gateway_url(url: str, where: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise UserError(f"{where}: {url!r} is not a gateway URL like http://gateway:8000")


def make_directory(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"--out: cannot create directory {out}: {error.strerror}") from None


def write(path: Path, text: str, private: bool = False) -> None:
    """Replace `path` whole, so a Prometheus reloading meanwhile never reads half a file."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(partial, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise UserError(f"--out: cannot write {path}: {error.strerror}") from None
