"""`rollback`: the command-line entry point. No traceback reaches a user."""

from __future__ import annotations

import os
import sys

import typer

from cli import (
    ack_cmd,
    comms_cmd,
    demo_cmd,
    drill_cmd,
    gateway_cmd,
    policy_cmd,
    preflight_cmd,
    report_cmd,
    rollback_cmds,
    rules_cmd,
    simulate_cmd,
    up_cmd,
    watch_cmd,
    worker_cmd,
)
from cli.errors import Failure, UserError

app = typer.Typer(
    name="rollback",
    help="Canary rollback runbook engine on Temporal.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(up_cmd.up)
app.command()(demo_cmd.demo)
app.command()(drill_cmd.drill)
app.command()(preflight_cmd.preflight)
app.add_typer(policy_cmd.app, name="policy")
app.add_typer(watch_cmd.app, name="watch")
app.command()(rollback_cmds.trigger)
app.command()(rollback_cmds.decide)
app.command()(rollback_cmds.status)
app.command()(report_cmd.report)
app.command()(ack_cmd.ack)
app.command()(comms_cmd.comms)
app.command()(worker_cmd.worker)
app.command()(gateway_cmd.gateway)
app.command()(simulate_cmd.simulate)
app.command()(rules_cmd.rules)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return its exit code (2 for bad input, 1 for a failure)."""
    try:
        # Without standalone mode click returns the code of a `typer.Exit` instead of exiting.
        code = app(args=argv, standalone_mode=False)
    except typer.Exit as done:
        return done.exit_code
    except typer.Abort:
        say("aborted")
        return 130
    except (UserError, Failure) as error:
        say(f"error: {error}")
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        if _is_usage_error(error):
            return _usage(error)
        if os.environ.get("ROLLBACK_DEBUG"):
            raise
        say(f"error: {type(error).__name__}: {error} (ROLLBACK_DEBUG=1 shows the traceback)")
        return 1
    return code if isinstance(code, int) else 0


def _is_usage_error(error: Exception) -> bool:
    # Typer vendors its own click; its exceptions are recognised by their interface.
    return hasattr(error, "format_message") and isinstance(getattr(error, "exit_code", None), int)


def _usage(error: Exception) -> int:
    code: int = getattr(error, "exit_code", 2)
    if type(error).__name__ == "NoArgsIsHelpError":
        return 0
    say(f"error: {error.format_message()}")  # type: ignore[attr-defined]
    ctx = getattr(error, "ctx", None)
    if ctx is not None:
        say(f"see: {ctx.command_path} --help")
    return code


def say(line: str) -> None:
    print(line, file=sys.stderr)


def entry() -> None:
    code = main()
    # The Temporal client's core threads can crash the interpreter's finalization
    # (sdk-python#300): the command's work is done and flushed, so leave without it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
