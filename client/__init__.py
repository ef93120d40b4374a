"""Calls on workflows by name (trigger, decide, status, history reading), for the CLI and the
gateway. Imports no workflow or activity module, so the gateway stays a thin ingress."""
