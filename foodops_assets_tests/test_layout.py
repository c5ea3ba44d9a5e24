"""The package's house plan: folders by role, imports running one way, down the layers.

Walks the imports of every module of ``foodops_assets`` with ``ast`` (nothing is imported
or run), so a cycle or an arrow back up fails CI before it confuses a reader.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "foodops_assets"

# bottom to top; a module may import its own layer's other rooms and anything below
LAYERS = [
    {"settings", "drills"},
    {"partitions", "contracts", "datagen"},
    {"lakehouse", "transforms"},
    {"checks"},
    {"assets"},
    {"automation", "operations", "observability", "databricks"},
    {"definitions"},
    {"cli"},
]
LAYER_OF = {room: i for i, rooms in enumerate(LAYERS) for room in rooms}


def _modules() -> dict[str, Path]:
    out = {}
    for f in PACKAGE.rglob("*.py"):
        parts = list(f.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the package's modules it imports (at any depth of the file, lazy ones too)."""

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    stem = base[: len(base) - node.level + 1]
                    target = ".".join(stem + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [target] + [f"{target}.{a.name}" for a in node.names]
            for name in names:
                if not name.startswith("foodops_assets"):
                    continue
                target = owner(name)
                if target and target != module and not module.startswith(target + "."):
                    graph[module].add(target)
    return graph


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "(package)"


def test_the_top_level_holds_only_the_three_modules_and_folders():
    loose = sorted(f.name for f in PACKAGE.glob("*.py") if f.name != "__init__.py")
    assert loose == ["definitions.py", "partitions.py", "settings.py"]
    for folder in (d for d in PACKAGE.iterdir() if d.is_dir() and d.name != "__pycache__"):
        assert folder.name in LAYER_OF, f"{folder.name}/ has no layer in the house plan"
        init = folder / "__init__.py"
        assert init.is_file() and ast.get_docstring(ast.parse(init.read_text())), (
            f"{folder.name}/__init__.py must say what the folder holds and what it may import"
        )


def test_imports_run_down_the_layers():
    graph = _imports(_modules())
    upward = sorted(
        f"{m} -> {t}"
        for m, targets in graph.items()
        for t in targets
        if _room(m) != "(package)" and LAYER_OF[_room(t)] > LAYER_OF[_room(m)]
    )
    assert not upward, "imports that run back up a layer:\n" + "\n".join(upward)


def test_no_import_cycle_between_modules_or_rooms():
    graph = _imports(_modules())
    rooms: dict[str, set[str]] = {}
    for m, targets in graph.items():
        if _room(m) == "(package)":
            continue  # the package's face re-exports the code location
        rooms.setdefault(_room(m), set()).update(_room(t) for t in targets if _room(t) != _room(m))
    for name, g in (
        ("module", {m: t for m, t in graph.items() if _room(m) != "(package)"}),
        ("room", rooms),
    ):
        cycle = _find_cycle(g)
        assert cycle is None, f"{name} import cycle: {' -> '.join(cycle)}"


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()
    path: list[str] = []

    def visit(v: str) -> list[str] | None:
        if v in path:
            return path[path.index(v) :] + [v]
        if v in done:
            return None
        path.append(v)
        for w in sorted(graph.get(v, ())):
            found = visit(w)
            if found:
                return found
        path.pop()
        done.add(v)
        return None

    for v in sorted(graph):
        found = visit(v)
        if found:
            return found
    return None


def test_the_walk_sees_a_planted_cycle_and_a_planted_upward_import():
    # the walker itself must be able to fail
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None
    graph = _imports(_modules())
    assert "foodops_assets.assets.graph" in graph["foodops_assets.definitions"]
    assert LAYER_OF["definitions"] > LAYER_OF["assets"] > LAYER_OF["lakehouse"]


# Dagster's private modules (``dagster._core``, ``dagster._utils``, ...) and its internal
# constructors change without notice between releases; the package uses the public API only
_DAGSTER_INTERNALS = re.compile(r"\bdagster\._|\bfrom dagster import _|dagster_internal_init")


def _dagster_internals(sources: dict[str, str]) -> list[str]:
    return sorted(
        f"{name}:{n}: {line.strip()}"
        for name, text in sources.items()
        for n, line in enumerate(text.splitlines(), start=1)
        if _DAGSTER_INTERNALS.search(line)
    )


# The one exception, with its reason: the warm run worker executes an existing run the way
# Dagster's own run worker does (``dagster api execute_run``), and no public API does that.
# The lines are listed exactly, so that any other internal is still caught.
_ALLOWED_INTERNALS = {
    "foodops_assets/automation/warm_runs.py": (
        "from dagster._grpc.impl import core_execute_run",
        "from dagster._utils.hosted_user_process import recon_job_from_origin",
    ),
}


def test_the_package_uses_only_dagsters_public_api():
    sources = {
        str(path.relative_to(PACKAGE.parent)): path.read_text(encoding="utf-8")
        for path in PACKAGE.rglob("*.py")
    }
    assert len(sources) > 50
    allowed = {(f, line) for f, lines in _ALLOWED_INTERNALS.items() for line in lines}
    found = [
        hit
        for hit in _dagster_internals(sources)
        if (hit.split(":")[0], hit.split(": ", 1)[1]) not in allowed
    ]
    assert not found, "Dagster internals used in the package:\n" + "\n".join(found)
    for name, line in allowed:  # an exception that is no longer needed is removed
        assert line in sources[name], f"{name} no longer uses {line}: drop the exception"


def test_the_internals_grep_sees_each_way_in():
    planted = {
        "a.py": "from dagster._core.events import DagsterEventType",
        "b.py": "import dagster._utils.schedules as s",
        "c.py": "op = dg.OpDefinition.dagster_internal_init(name='x')",
        "d.py": "from dagster import _check",
        "e.py": "import dagster as dg\nfrom dagster_pipes import open_dagster_pipes",
    }
    assert [f.split(":")[0] for f in _dagster_internals(planted)] == [
        "a.py",
        "b.py",
        "c.py",
        "d.py",
    ]
