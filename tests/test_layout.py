"""Repository layout rules that CI must keep: the package layers, no import cycles, no
function-level imports of project modules (outside a short documented list), no oversized files.

The layers (docs/ARCHITECTURE.md, "Packages"): a package may import itself and the packages
listed for it, nothing above.

    models  <-  infra  <-  exchange_sim, actors, report  <-  supervision, backtest, acceptance
            <-  run.py                                                   (bench: anything)
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: package -> the project packages it may import (besides itself)
ALLOWED: dict[str, frozenset[str]] = {
    "models": frozenset(),
    "infra": frozenset({"models"}),
    "exchange_sim": frozenset({"models", "infra"}),
    "actors": frozenset({"models", "infra"}),
    "report": frozenset({"models", "infra"}),
    "supervision": frozenset({"models", "infra", "actors", "exchange_sim", "report"}),
    "backtest": frozenset({"models", "infra", "actors", "exchange_sim", "report"}),
    "acceptance": frozenset({"models", "infra", "actors", "exchange_sim"}),
    "bench": frozenset({"models", "infra", "actors", "exchange_sim", "report", "supervision",
                        "backtest", "acceptance", "run"}),
    "run": frozenset({"models", "infra", "actors", "exchange_sim", "report", "supervision",
                      "backtest", "acceptance"}),
}
PACKAGES = frozenset(ALLOWED)

#: Function-level imports of project modules that are deliberate (module -> imported module ->
#: why). Everything else imports at module top.
_CLI = ("the CLI loads a subcommand's package only when it runs: `gridbot status` must not "
        "pay for thespian's actors, numpy or matplotlib")
LAZY_OK: dict[tuple[str, str], str] = {
    ("run", "supervision.launcher"): _CLI,
    ("run", "supervision.status"): _CLI,
    ("run", "exchange_sim.cli"): _CLI,
    ("run", "exchange_sim.cli_options"): "the sim's options for --help, without the server",
    ("run", "backtest.cli"): _CLI,
    ("run", "backtest.optimize"): _CLI,
    ("run", "report.cli"): _CLI,
    ("run", "acceptance.checks"): _CLI,
    ("run", "infra.config_io"): _CLI,
}

#: Files allowed over MAX_LINES, with the reason.
MAX_LINES = 600
LONG_OK: dict[str, str] = {
    "models/messages.py": "the one message catalogue: class names must be unique project-wide "
                          "(thespian dispatches on them) and AnyMessage is one tagged union",
}


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in ROOT.rglob("*.py"):
        rel = p.relative_to(ROOT)
        if rel.parts[0] not in PACKAGES and rel.name != "run.py":
            continue
        if rel.parts[0] == "run.py" or len(rel.parts) == 1:
            if rel.name != "run.py":
                continue
        name = ".".join(rel.with_suffix("").parts)
        out[name.removesuffix(".__init__")] = p
    return out


MODULES = _modules()


def _target(cur: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    """Project modules an import statement names (resolved to modules that exist)."""
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:
            base = cur.split(".")
            if MODULES[cur].name != "__init__.py":
                base = base[:-1]
            if node.level > 1:
                base = base[: len(base) - (node.level - 1)]
            mod = ".".join(base + ([node.module] if node.module else []))
        else:
            mod = node.module or ""
        names = [mod] + [f"{mod}.{a.name}" for a in node.names
                         if f"{mod}.{a.name}" in MODULES]
    out = []
    for n in names:
        if n.split(".")[0] not in PACKAGES:
            continue
        while n not in MODULES and "." in n:
            n = n.rsplit(".", 1)[0]
        if n in MODULES and n != cur:
            out.append(n)
    return out


def _imports() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(module-top imports, function-level imports) per module; ``TYPE_CHECKING`` blocks are
    ignored (they never run)."""
    top: dict[str, set[str]] = {}
    lazy: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        t: set[str] = set()
        lz: set[str] = set()

        def visit(node: ast.AST, in_func: bool, name: str = name, t: set[str] = t,
                  lz: set[str] = lz) -> None:
            for ch in ast.iter_child_nodes(node):
                if isinstance(ch, (ast.Import, ast.ImportFrom)):
                    (lz if in_func else t).update(_target(name, ch))
                elif isinstance(ch, ast.If) and "TYPE_CHECKING" in ast.unparse(ch.test):
                    continue
                else:
                    visit(ch, in_func or isinstance(ch, (ast.FunctionDef,
                                                         ast.AsyncFunctionDef, ast.Lambda)))

        visit(ast.parse(path.read_text(), str(path)), False)
        top[name], lazy[name] = t, lz
    return top, lazy


TOP, LAZY = _imports()


def _pkg(mod: str) -> str:
    return mod.split(".")[0]


def test_no_upward_imports() -> None:
    bad = sorted(f"{a} -> {b}" for a in MODULES for b in TOP[a] | LAZY[a]
                 if _pkg(b) != _pkg(a) and _pkg(b) not in ALLOWED[_pkg(a)])
    assert bad == [], "imports against the layers (docs/ARCHITECTURE.md):\n" + "\n".join(bad)


def test_no_function_level_imports_of_project_modules() -> None:
    bad = sorted(f"{a} -> {b}" for a in MODULES for b in LAZY[a] if (a, b) not in LAZY_OK)
    assert bad == [], "import these at module top (or document the exception):\n" + \
        "\n".join(bad)


def test_lazy_exceptions_are_still_needed() -> None:
    stale = sorted(f"{a} -> {b}" for a, b in LAZY_OK if b not in LAZY.get(a, set()))
    assert stale == []


def test_no_import_cycles() -> None:
    graph = {a: TOP[a] | LAZY[a] for a in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:  # Tarjan
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    assert cycles == []


def test_the_layer_test_sees_the_project() -> None:
    # guards the walker itself: it must find known edges, or the tests above prove nothing
    assert "models.messages" in MODULES and "run" in MODULES
    assert "models.messages" in TOP["actors.base"]
    assert any(_pkg(b) == "supervision" for b in TOP["run"] | LAZY["run"])


def test_only_the_adapter_touches_thespian_internals() -> None:
    """Every private thespian name lives in supervision/thespian_compat.py (a thespian upgrade
    is a one-file change); everything else uses ``thespian.actors`` only."""
    bad = []
    for name, path in MODULES.items():
        if name == "supervision.thespian_compat":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad += [f"{name}: {m}" for m in mods if m.startswith("thespian.")
                    and m != "thespian.actors"]
    assert bad == []


def test_files_stay_readable() -> None:
    long = sorted(f"{p.relative_to(ROOT)}: {n} lines" for p in MODULES.values()
                  if (n := len(p.read_text().splitlines())) > MAX_LINES
                  and str(p.relative_to(ROOT)) not in LONG_OK)
    assert long == [], "split these along their seams (or say why in LONG_OK):\n" + \
        "\n".join(long)


def test_test_module_basenames_are_unique() -> None:
    # tests/ has no __init__.py files (pytest "prepend" import mode): two test modules with
    # the same basename in different folders cannot both be collected.
    names = Counter(p.name for p in (ROOT / "tests").rglob("*.py")
                    if p.name != "conftest.py" and p.name != "__init__.py")
    assert [n for n, c in names.items() if c > 1] == []


def test_fixed_top_level_layout() -> None:
    for name in ("actors", "supervision", "models", "conf", "tests", "exchange_sim", "bench",
                 "infra", "backtest", "report", "run.py", "setup.cfg", "README.md"):
        assert (ROOT / name).exists(), name
