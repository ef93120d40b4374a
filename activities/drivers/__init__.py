"""Drivers: how each kind of Phase 1 action reaches its target, as the policy's
`targets.drivers` chooses (runbook/targets.py). `base` holds the small interfaces the
activities call; `build` picks the implementations: http (activities/traffic.py, services.py,
config.py, flags.py), haproxy, command (locally or over SSH) and redis (activities/cache.py)."""
