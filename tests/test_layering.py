"""The layering rule of DESIGN.md, kept true by walking the syntax tree of every module.

Arrows point down only: cli → capacity → cluster → engines → schedulers → workloads → perf/report → metrics.
Every import counts, also one inside a function (a lazy import is still an arrow). ``scripts/`` may use any
layer but the CLI (a script uses the library, never the command line's module), the test kit in
``slobench/testing`` is for tests, scripts and vLLM's subprocesses only, and the simulator path imports no
torch, vllm or ray.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Higher imports lower. perf and report share a level: neither may import the other.
RANK = {
    "cli": 10,
    "qualify": 8.7,
    "scripts": 9,
    "testing": 8.5,
    "capacity": 8,
    "cluster": 7,
    "engines": 6,
    "schedulers": 5,
    "workloads": 4,
    "perf": 3,
    "report": 3,
    "metrics": 2,
    "yaml_files": 1,
    "errors": 0,
    "data": 0,
}


def _layer(path: Path) -> str:
    rel = path.relative_to(ROOT)
    if rel.parts[0] == "scripts":
        return "scripts"
    return rel.with_suffix("").parts[1]  # slobench/<layer>[/...] or slobench/<module>.py


def _imported_layers(tree: ast.AST) -> list[tuple[str, int]]:
    """(slobench layer, line) for every import of the package, at any depth of the tree."""
    out: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from slobench import runner` names the layer in the imported name.
            names = [f"slobench.{a.name}" for a in node.names] if node.module == "slobench" else [node.module]
        else:
            continue
        out += [(name.split(".")[1], node.lineno) for name in names
                if name.startswith("slobench.") and len(name.split(".")) > 1]
    return out


def _modules() -> list[Path]:
    files = sorted((ROOT / "slobench").rglob("*.py")) + sorted((ROOT / "scripts").rglob("*.py"))
    return [f for f in files if f.name != "__init__.py" or f.parent.name != "slobench"]


def upward_imports(files: list[Path]) -> list[str]:
    """Every import that points up (or sideways between two layers of one level), as 'file:line a → b'."""
    bad = []
    for f in files:
        src = _layer(f)
        for dst, line in _imported_layers(ast.parse(f.read_text(), filename=str(f))):
            if dst == src:
                continue
            if dst not in RANK:
                bad.append(f"{f.relative_to(ROOT)}:{line} {src} → {dst} (layer not in the rule; add it to RANK)")
            elif RANK[dst] >= RANK[src]:
                bad.append(f"{f.relative_to(ROOT)}:{line} {src} → {dst}")
    return bad


def test_every_layer_of_the_package_is_ranked() -> None:
    layers = {_layer(f) for f in _modules()}
    assert layers <= set(RANK), f"unranked layers: {sorted(layers - set(RANK))}"


def test_no_import_points_up() -> None:
    bad = upward_imports(_modules())
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_the_check_fires_on_an_upward_import(tmp_path: Path) -> None:
    """A crafted module in the engines layer that imports the CLI inside a function is caught."""
    fake = ROOT / "slobench" / "engines" / "_layering_probe.py"
    fake.write_text("def f():\n    from slobench.cli.compare import compare_cmd\n    import slobench.capacity\n")
    try:
        bad = upward_imports([fake])
    finally:
        fake.unlink()
    assert [b.split(" ", 1)[1] for b in bad] == ["engines → cli", "engines → capacity"]


@pytest.mark.parametrize("module", ["slobench.cluster.run", "slobench.capacity.execute", "slobench.engines.sim"])
def test_the_simulator_path_imports_no_cli_and_no_heavy_extra(module: str) -> None:
    code = (f"import sys, {module}\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('vllm', 'torch', 'ray')"
            " or m.startswith('slobench.cli'))\n"
            "print(bad)\nsys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
