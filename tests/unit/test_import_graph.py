"""No import cycle anywhere in the package, counting imports inside functions (issue 13): the
modules form layers, so each can be read (and tested) knowing only those below it."""

import ast
from pathlib import Path

import gpt4llm

PKG = Path(gpt4llm.__file__).parent


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, name: str, modules: set[str]) -> set[str]:
    """Every gpt4llm module ``name`` imports, at the top or inside a function."""
    out = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in modules:  # "from gpt4llm.train import common" names a module; "from x import f" not
                t = t.rsplit(".", 1)[0] if "." in t else ""
            if t and t != name and t.startswith("gpt4llm"):
                out.add(t)
    return out


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PKG.rglob("*.py")}
    mods = set(files)
    return {m: imports_of(p, m, mods) for m, p in files.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(g.get(m, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (c := visit(d)):
                return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(g):
        if m not in state and (c := visit(m)):
            return c
    return None


def test_no_import_cycle_in_the_package():
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle)


def test_trainers_are_peers():
    g = graph()
    for trainer in ("gpt4llm.train.sft", "gpt4llm.train.reward"):
        train_deps = {d for d in g[trainer] if d.startswith("gpt4llm.train.")}
        assert train_deps <= {"gpt4llm.train.common", "gpt4llm.train.data"}, (trainer, train_deps)
