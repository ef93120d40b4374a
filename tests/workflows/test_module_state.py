"""A running worker runs the workflows unsandboxed (`ROLLBACK_WORKFLOW_SANDBOX`, for speed):
their modules, and the domain and contract modules they run (`runbook/`, `contract/`), are then
loaded once and shared by every run, so they must hold nothing a run could change. (Every test
worker and the replay tests still run the sandbox, which holds the code itself to
determinism.)"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import typing
from datetime import timedelta
from pathlib import Path, PurePath
from types import MappingProxyType, ModuleType
from typing import Any

from pydantic import PlainSerializer
from temporalio.common import RetryPolicy, SearchAttributeKey

import contract
import runbook
import workflows

SHARED: tuple[ModuleType, ...] = (workflows, runbook, contract)
"""The packages a workflow run executes: each module is loaded once per worker."""
READ_ONLY = (
    str,
    int,
    float,
    bool,
    bytes,
    timedelta,
    tuple,
    frozenset,
    MappingProxyType,
    re.Pattern,
    PurePath,
    PlainSerializer,
)
SDK_CONSTANTS = (SearchAttributeKey, RetryPolicy)
"""Handed to the SDK as they are and never changed by workflow code (checked below)."""


def modules() -> list[ModuleType]:
    return [
        importlib.import_module(f"{package.__name__}.{info.name}")
        for package in SHARED
        for info in pkgutil.iter_modules(package.__path__)
    ]


def module_constants() -> list[tuple[str, str, Any]]:
    out = []
    for module in modules():
        for name, value in vars(module).items():
            if name.startswith("__") or name == "annotations":
                continue
            if inspect.ismodule(value) or inspect.isclass(value) or inspect.isroutine(value):
                continue
            if isinstance(value, typing.TypeVar) or typing.get_origin(value) is not None:
                continue  # type aliases
            if getattr(value, "__module__", None) == "typing":
                continue  # typing's own forms (Literal)
            out.append((module.__name__, name, value))
    return out


def read_only(value: Any) -> bool:
    """Read-only all the way down (a tuple of lists is not); functions and classes are names."""
    if inspect.isroutine(value) or inspect.isclass(value):
        return True
    if type(value).__module__ == "dataclasses":
        return True  # the sentinel of a `default_factory` (a fresh value per instance)
    if isinstance(value, MappingProxyType):
        return all(read_only(k) and read_only(v) for k, v in value.items())
    if isinstance(value, tuple | frozenset):
        return all(read_only(v) for v in value)
    return value is None or isinstance(value, READ_ONLY + SDK_CONSTANTS)


def own_classes() -> list[type]:
    out = []
    for module in modules():
        out += [
            v
            for v in vars(module).values()
            if inspect.isclass(v) and v.__module__ == module.__name__
        ]
    return out


def test_workflow_modules_hold_only_read_only_values() -> None:
    constants = module_constants()
    assert constants, "no module constants found: the scan is broken"
    mutable = [
        f"{module}.{name}: {type(value).__name__}"
        for module, name, value in constants
        if not read_only(value)
    ]
    assert mutable == []


def test_workflow_classes_share_nothing_a_run_could_change() -> None:
    """Class attributes and default arguments are shared by every instance (every run)."""
    classes = own_classes()
    assert len(classes) > 5, "no classes found: the scan is broken"
    shared = []
    for cls in classes:
        for name, value in vars(cls).items():
            if name.startswith("__") or inspect.isroutine(value) or inspect.isclass(value):
                continue
            if name in ("model_config", "_abc_impl"):
                continue  # pydantic's class configuration and abc's registry, read at definition
            if isinstance(value, property | staticmethod | classmethod):
                continue
            if type(value).__module__.startswith(("pydantic", "dataclasses")):
                continue  # a model's or dataclass's machinery, not state
            if not read_only(value):
                shared.append(f"{cls.__qualname__}.{name}: {type(value).__name__}")
        for name, method in inspect.getmembers(cls, inspect.isfunction):
            if method.__module__ != cls.__module__:
                continue  # inherited (pydantic's BaseModel), not ours
            for parameter in inspect.signature(method).parameters.values():
                default = parameter.default
                if default is not inspect.Parameter.empty and not read_only(default):
                    shared.append(f"{cls.__qualname__}.{name}({parameter.name}=…)")
    assert shared == []


def test_workflow_code_never_rebinds_or_changes_a_module_value() -> None:
    shared = {name for _, name, value in module_constants() if isinstance(value, SDK_CONSTANTS)}
    found = []
    for path in (p for package in SHARED for p in Path(package.__path__[0]).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Global | ast.Nonlocal):
                found.append(f"{path.name}:{node.lineno}: {type(node).__name__.lower()}")
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if (
                    isinstance(target, ast.Attribute)
                    and isinstance(target.value, ast.Name)
                    and target.value.id in shared
                ):
                    found.append(f"{path.name}:{node.lineno}: sets {target.value.id}.attr")
    assert found == []


def test_the_worker_runs_unsandboxed_unless_told_and_tests_run_sandboxed() -> None:
    from temporalio.worker import UnsandboxedWorkflowRunner
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

    from config.settings import Settings
    from worker.main import workflow_runner

    assert isinstance(workflow_runner(Settings(_env_file=None)), UnsandboxedWorkflowRunner)
    sandboxed = Settings(_env_file=None, workflow_sandbox=True)
    assert isinstance(workflow_runner(sandboxed), SandboxedWorkflowRunner)
    # The workers of the workflow tests take the SDK's default: the sandbox.
    helpers = (Path(__file__).parent / "helpers.py").read_text()
    assert "workflow_runner" not in helpers
