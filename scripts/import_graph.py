#!/usr/bin/env python3
"""deployctl's import graph, read from the source (nothing is imported or run): which module
imports which, lazy imports inside functions included. Prints the import circles and the
arrows that point up the layers (docs/design: cli -> services -> plan, adapters the only
I/O, config below plan), and exits 1 when there is either.

    python3 scripts/import_graph.py            # the summary
    python3 scripts/import_graph.py --edges    # every arrow, one per line
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "deployctl"
# Higher imports lower, never the other way. Modules at the package's top level (errors,
# events, secrets, artifacts, reports) sit at the bottom with config.
LAYERS = {"cli": 4, "services": 3, "adapters": 2, "plan": 2, "config": 1}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, name: str) -> set[str]:
    """The deployctl modules `path` imports (absolute names), at any depth of the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != PACKAGE:
                continue
            found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names}  # `from . import x`: x may be a module
    return found


def graph() -> dict[str, set[str]]:
    """Module -> the modules it imports. A package (its __init__) re-exporting its own
    modules is not an arrow between layers, nor a module importing the package it is in."""
    files = {module_name(p): p for p in (ROOT / PACKAGE).rglob("*.py")}
    return {name: {t for t in imports(path, name)
                   if t in files and t != name and not (t.startswith(name + ".") or name.startswith(t + "."))}
            for name, path in files.items()}


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.get(parts[1], 0) if len(parts) >= 2 else 0


def upward(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((a, b) for a, targets in edges.items() for b in targets if layer(b) > layer(a))


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main(argv: list[str]) -> int:
    edges = graph()
    if "--edges" in argv:
        for a in sorted(edges):
            for b in sorted(edges[a]):
                print(f"{a} -> {b}")
        return 0
    up, loops = upward(edges), circles(edges)
    print(f"{len(edges)} modules, {sum(len(t) for t in edges.values())} imports")
    print(f"import circles: {len(loops)}")
    for loop in loops:
        print("  " + " <-> ".join(loop))
    print(f"arrows up the layers (cli > services > plan, adapters > config): {len(up)}")
    for a, b in up:
        print(f"  {a} -> {b}")
    return 1 if up or loops else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
