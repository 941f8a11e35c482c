#!/usr/bin/env python3
"""Module cycles inside each crate under engine/: which top-level modules of a crate name which
(`crate::m`, `super::m` from a top-level module's file, `m::` after `use crate::{...}`), and the
groups of modules that reach each other. Prints the groups; exits 1 if any crate has one.

A crate's top-level modules are the files and directories beside its lib.rs; a reference from
any file inside module `a` to module `b` is an edge a -> b. Tests (`#[cfg(test)] mod tests`)
count too: a cycle through a test is still a cycle in the code a reader must follow.
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "engine"


def top_level_modules(src: Path) -> dict[str, list[Path]]:
    modules: dict[str, list[Path]] = {}
    for path in sorted(src.rglob("*.rs")):
        relative = path.relative_to(src)
        if relative.parts[0] in ("lib.rs", "main.rs"):
            continue
        name = relative.parts[0].removesuffix(".rs")
        modules.setdefault(name, []).append(path)
    return modules


def references(text: str, names: set[str], own: str, depth: int) -> set[str]:
    found = set()
    for match in re.finditer(r"\bcrate::([a-z_][a-z0-9_]*)", text):
        found.add(match.group(1))
    for match in re.finditer(r"\bcrate::\{([^}]*)\}", text):
        found.update(re.findall(r"\b([a-z_][a-z0-9_]*)\b", match.group(1)))
    # `super::m` from a top-level module's own file names a sibling.
    if depth == 1:
        for match in re.finditer(r"\bsuper::([a-z_][a-z0-9_]*)", text):
            found.add(match.group(1))
        for match in re.finditer(r"\bsuper::\{([^}]*)\}", text):
            found.update(re.findall(r"\b([a-z_][a-z0-9_]*)\b", match.group(1)))
    return {name for name in found if name in names and name != own}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    index, low, on_stack, stack, groups = {}, {}, set(), [], []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def main() -> int:
    failed = False
    for manifest in sorted(ROOT.glob("*/Cargo.toml")) + [ROOT / "Cargo.toml"]:
        src = manifest.parent / "src"
        if not src.is_dir():
            continue
        modules = top_level_modules(src)
        names = set(modules)
        graph = {name: set() for name in names}
        for name, files in modules.items():
            for path in files:
                depth = len(path.relative_to(src).parts)
                # A directory module's mod.rs sits one level down but speaks as the module.
                if path.name == "mod.rs":
                    depth -= 1
                graph[name] |= references(path.read_text(), names, name, depth)
        groups = strongly_connected(graph)
        crate = manifest.parent.relative_to(ROOT.parent)
        if groups:
            failed = True
            for group in groups:
                print(f"module cycle in {crate}: {' <-> '.join(group)}", file=sys.stderr)
        else:
            print(f"modules: no cycle in {crate} ({len(names)} top-level modules)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
