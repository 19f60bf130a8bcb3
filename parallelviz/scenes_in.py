"""List the Manim scene classes a scene file defines (for `make all-scenes`), without importing manim."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

__all__ = ["scene_names"]


def scene_names(path: str | Path) -> list[str]:
    """Names of top-level classes in ``path`` that subclass a ``*Scene`` class, in file order.

    Scenes may subclass one another; a class counts when any base name ends in
    ``Scene`` or is an earlier scene of the same file.
    """
    tree = ast.parse(Path(path).read_text())
    found: list[str] = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        bases = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases]
        if any(name.endswith("Scene") or name in found for name in bases):
            found.append(node.name)
    return found


if __name__ == "__main__":
    print("\n".join(scene_names(sys.argv[1])))
