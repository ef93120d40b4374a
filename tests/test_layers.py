"""The layers as the README's table draws them: each top-level package imports only the
packages its row names. A new import across a layer fails here, and the table (and
../shared/DESIGN.md's) is changed with it, or the import is."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAY_IMPORT: dict[str, set[str]] = {
    "runbook": set(),
    "contract": {"runbook"},
    "config": {"runbook"},
    "client": {"contract", "runbook"},
    "workflows": {"runbook", "contract", "activities"},
    "activities": {"runbook", "contract", "config", "client"},
    "worker": {"runbook", "contract", "config", "client", "workflows", "activities"},
    "gateway": {"runbook", "contract", "client", "config"},
    "cli": {
        "runbook",
        "contract",
        "config",
        "client",
        "workflows",
        "activities",
        "worker",
        "gateway",
        "simulator",
    },
    "simulator": set(),
}
"""`workflows` imports `activities` for the activities' names and signatures only (inside
`workflow.unsafe.imports_passed_through`); `cli` is the command and the embedded stack."""


def imported(package: str) -> dict[str, set[str]]:
    """The packages of ours each module of `package` imports, by module path."""
    out: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            found |= {n.split(".")[0] for n in names} & set(MAY_IMPORT)
        out[str(path.relative_to(ROOT))] = found - {package}
    return out


def test_every_package_imports_only_what_its_layer_may() -> None:
    crossing = [
        f"{module} imports {other}"
        for package, allowed in MAY_IMPORT.items()
        for module, found in imported(package).items()
        for other in sorted(found - allowed)
    ]
    assert crossing == []


def test_the_readme_table_says_the_same() -> None:
    """The README's layer table lists, per folder, what it may import."""
    readme = (ROOT / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)/` \| [^|]+ \| ([^|]+) \|$", readme, re.MULTILINE))
    written = {
        name: {part.strip(" `/") for part in text.split(",") if part.strip() not in ("—", "")}
        for name, text in rows.items()
        if name in MAY_IMPORT
    }
    assert written == MAY_IMPORT
