"""The README's map of the library is the truth about its imports: a module imports only from its own floor and
the floors above it, and every module stands on a floor."""

import ast
import re

from helpers import ROOT

FLOOR = re.compile(r"^floor (\d+)  (\S.*?)(?:   |$)", re.MULTILINE)


def floors() -> dict[str, int]:
    layout = (ROOT / "README.md").read_text(encoding="utf-8").split("## Layout", 1)[1].split("```")[1]
    return {name: int(n) for n, names in FLOOR.findall(layout) for name in names.split()}


def imports(path) -> list[tuple[str, int]]:
    """The rag modules a file imports (their first part under rag), with the line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "rag":
            names = [a.name for a in node.names] if node.module == "rag" else [node.module.split(".")[1]]
            found += [(n, node.lineno) for n in names]
        elif isinstance(node, ast.Import):
            found += [(a.name.split(".")[1], node.lineno) for a in node.names if a.name.startswith("rag.")]
    return found


def test_every_module_imports_only_from_its_floor_and_those_above():
    floor = floors()
    assert len(set(floor.values())) >= 6 and "quotes" in floor and "reading" in floor
    modules = {p: p.relative_to(ROOT / "rag").parts[0].removesuffix(".py") for p in (ROOT / "rag").rglob("*.py")}
    unplaced = sorted({m for m in modules.values() if m not in floor and m != "__init__"})
    assert not unplaced, f"modules on no floor of the README's map: {unplaced}"
    backward = [f"{p.relative_to(ROOT)}:{line} imports rag.{name} (floor {floor[name]}, below its {floor[m]})"
                for p, m in modules.items() if m in floor for name, line in imports(p)
                if name in floor and floor[name] > floor[m]]
    assert not backward, backward
