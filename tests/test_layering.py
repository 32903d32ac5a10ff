"""The package's layers import only downward, checked on the source text against ``hsfuse._layers.RANK`` (the
one place the layering is stated; DESIGN.md section 3)."""

from __future__ import annotations

import ast
from pathlib import Path

from hsfuse._layers import RANK

SRC = Path(__file__).resolve().parents[1] / "src" / "hsfuse"


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
        if rel in (("__init__.py",), ("__main__.py",)):
            continue
        own = _layer(rel)
        for target in _imports(path):
            if target in RANK and own in RANK and RANK[target] > RANK[own]:
                bad.append(f"{'/'.join(rel)} imports {target}")
    assert not bad, "upward imports: " + "; ".join(bad)


def test_every_top_level_module_has_a_rank():
    names = {p.name.removesuffix(".py") for p in SRC.iterdir() if (p.suffix == ".py" or p.is_dir())
             and not p.name.startswith("__")}
    assert names <= set(RANK), f"modules without a rank in hsfuse._layers.RANK: {sorted(names - set(RANK))}"
