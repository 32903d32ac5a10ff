"""The package's layers import only downward (DESIGN.md section 3), checked on the source text."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "hsfuse"
# rank of each top-level module/package; a module may import only modules of lower or equal rank
# (methods sit above models: the method registry lists the networks, networks never import methods)
RANK = {"errors": 0, "_checks": 0, "types": 0, "io": 0, "physics": 1, "metrics": 2, "models": 3, "methods": 3.5,
        "estimation": 3.5, "data": 4, "training": 4, "synthesis": 4.5, "bench": 5, "viz": 5, "workflows": 5, "cli": 6}


def _layer(parts: tuple[str, ...]) -> str:
    return parts[0].removesuffix(".py")


def _imports(path: Path) -> list[str]:
    rel = path.relative_to(SRC).parts
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(rel[:-1])[: len(rel) - node.level]
            target = (base + (node.module.split(".") if node.module else []))
            if target:
                out.append(target[0])
            else:  # "from .. import x"
                out.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hsfuse."):
            out.append(node.module.split(".")[1])
    return out


def test_layers_import_downward_only():
    bad = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).parts
        if rel == ("__init__.py",):
            continue
        own = _layer(rel)
        for target in _imports(path):
            if target in RANK and own in RANK and RANK[target] > RANK[own]:
                bad.append(f"{'/'.join(rel)} imports {target}")
    assert not bad, "upward imports: " + "; ".join(bad)
