"""The operator docs stay true to the code.

* docs/CONFIG.md has one table row per configuration parameter (every JSON path of the msgspec
  ``Config`` tree), no row for a path that does not exist, and each row's default equals the
  code's default; conf/default.json holds exactly the defaults.
* Every ``python run.py ...`` command line quoted in README.md, docs/RUNBOOK.md and
  docs/CONFIG.md parses with run.py's own argparse parser.
* Every log event name the code emits is explained in docs/RUNBOOK.md.
"""

from __future__ import annotations

import ast
import io
import json
import re
import shlex
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import msgspec
import pytest

import run
from models.config import Config, parse_config

ROOT = Path(__file__).resolve().parents[1]
CONFIG_MD = ROOT / "docs" / "CONFIG.md"
RUNBOOK_MD = ROOT / "docs" / "RUNBOOK.md"
README_MD = ROOT / "README.md"
CODE_DIRS = ("actors", "models", "supervision", "exchange_sim")


# -- configuration ------------------------------------------------------------------------------
def _struct_types(info: msgspec.inspect.Type) -> list[msgspec.inspect.StructType]:
    """The Struct types a field's type can hold (directly or inside a union)."""
    if isinstance(info, msgspec.inspect.StructType):
        return [info]
    if isinstance(info, msgspec.inspect.UnionType):
        return [t for t in info.types if isinstance(t, msgspec.inspect.StructType)]
    return []


def config_paths(info: msgspec.inspect.StructType | None = None, prefix: str = "$"
                 ) -> list[str]:
    """Every parameter's JSON path: the leaves of the nested Struct tree (a field that is a
    Struct is a section, not a parameter; a Struct inside a union is both)."""
    if info is None:
        info = msgspec.inspect.type_info(Config)
    out: list[str] = []
    for f in info.fields:
        path = f"{prefix}.{f.encode_name}"
        subs = _struct_types(f.type)
        if not subs or isinstance(f.type, msgspec.inspect.UnionType):
            out.append(path)
        for sub in subs:
            out.extend(config_paths(sub, path))
    return out


def default_at(path: str) -> Any:
    """The default of ``path`` as plain JSON data."""
    node: Any = msgspec.to_builtins(Config())
    for part in path.split(".")[1:]:
        node = node[part]
    return json.loads(json.dumps(node))  # tuples -> lists, as in JSON


_CELL_SPLIT = re.compile(r"(?<!\\)\|")


def config_rows() -> dict[str, list[str]]:
    """CONFIG.md table rows keyed by their JSON path: ``path -> [cells...]``."""
    rows: dict[str, list[str]] = {}
    for line in CONFIG_MD.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| `$."):
            continue
        cells = [c.strip() for c in _CELL_SPLIT.split(line.strip())[1:-1]]
        path = cells[0].strip("`")
        assert path not in rows, f"CONFIG.md documents {path} twice"
        rows[path] = cells
    return rows


def test_schema_walk_finds_nested_parameters() -> None:
    paths = config_paths()
    for p in ("$.venue", "$.risk.drawdown_levels", "$.strategy.conviction_filter.window_bars",
              "$.strategy.system_weights.w_up", "$.sim.speed", "$.portfolio.weights"):
        assert p in paths
    assert "$.strategy" not in paths and "$.strategy.conviction_filter" not in paths
    assert len(paths) == len(set(paths)) > 100


def test_every_config_parameter_is_documented() -> None:
    rows = config_rows()
    missing = [p for p in config_paths() if p not in rows]
    assert not missing, ("parameters without a row in docs/CONFIG.md (add one to the table of "
                         f"their section): {missing}")


def test_no_documented_parameter_is_stale() -> None:
    known = set(config_paths())
    stale = [p for p in config_rows() if p not in known]
    assert not stale, f"docs/CONFIG.md documents parameters the schema lacks: {stale}"
    text = CONFIG_MD.read_text(encoding="utf-8")
    sections = {p.rsplit(".", 1)[0] for p in known} | {"$"}
    mentioned = {re.sub(r"\[\d+\]$", "", m) for m in re.findall(r"`(\$\.[A-Za-z0-9_.\[\]]+)`",
                                                                  text)}
    unknown = sorted(m for m in mentioned if m not in known and m not in sections)
    assert not unknown, f"docs/CONFIG.md mentions paths that do not exist: {unknown}"


def test_documented_defaults_match_the_code() -> None:
    wrong: list[str] = []
    for path, cells in config_rows().items():
        assert len(cells) == 7, f"{path}: expected 7 cells (path, type, default, unit, rule, " \
                                f"effect, plan name), got {len(cells)}"
        assert all(cells[i] for i in (1, 3, 4, 5)), f"{path}: empty type/unit/rule/effect cell"
        m = re.fullmatch(r"`(.*)`", cells[2])
        assert m, f"{path}: the default cell must be JSON in backticks, got {cells[2]!r}"
        if path in set(config_paths()) and json.loads(m.group(1)) != default_at(path):
            wrong.append(f"{path}: docs say {m.group(1)}, code has "
                         f"{json.dumps(default_at(path))}")
    assert not wrong, "docs/CONFIG.md defaults differ from the code:\n" + "\n".join(wrong)


def test_default_json_holds_exactly_the_defaults() -> None:
    cfg, errors = parse_config((ROOT / "conf" / "default.json").read_bytes())
    assert errors == []
    assert msgspec.to_builtins(cfg) == msgspec.to_builtins(Config())


# -- command lines --------------------------------------------------------------------------------
_CMD_RE = re.compile(r"\bpython3? run\.py\b([^`\n]*)")
_SHELL_STOP = re.compile(r"\s(?:&&|\|\||;|\||&|>|2>|<|#)(?:\s|$)")
_TEMPLATE = re.compile(r"[\[\]<>…]|\.\.\.|\{|\}")


def command_lines(path: Path) -> list[str]:
    """The argument strings of every ``python run.py ...`` in code spans and code blocks."""
    text = path.read_text(encoding="utf-8")
    out: list[str] = []
    in_block = False
    pending = ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("```"):
            in_block = not in_block
            pending = ""
            continue
        if in_block:
            line = pending + raw
            if line.rstrip().endswith("\\"):  # shell continuation
                pending = line.rstrip()[:-1] + " "
                continue
            pending = ""
            sources = [line]
        else:
            sources = re.findall(r"`([^`]+)`", raw)
        for src in sources:
            for m in _CMD_RE.finditer(src):
                args = _SHELL_STOP.split(m.group(1) + " ", maxsplit=1)[0]
                out.append(" ".join(args.split()))
    return out


def _parse(args: str) -> tuple[bool, str]:
    tokens = shlex.split(args)
    if not tokens or (tokens[0].startswith("-") and tokens[0] not in ("-h", "--help")):
        tokens.insert(0, "run")  # what run.main() does
    err = io.StringIO()
    try:
        with redirect_stderr(err), redirect_stdout(io.StringIO()):
            run.build_parser().parse_args(tokens)
    except SystemExit as e:
        return e.code == 0, err.getvalue().strip()
    return True, ""


def _concrete(path: Path) -> list[str]:
    return [c for c in command_lines(path) if not _TEMPLATE.search(c)]


def test_command_extraction_sees_blocks_and_spans(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text("Run `python run.py status --json` or\n```bash\nexport A=1\n"
                   "python run.py stop \\\n  --mode cancel-only && echo ok\n```\n"
                   "`python run.py [SUBCOMMAND]`\n", encoding="utf-8")
    assert command_lines(doc) == ["status --json", "stop --mode cancel-only", "[SUBCOMMAND]"]
    assert _concrete(doc) == ["status --json", "stop --mode cancel-only"]
    assert _parse("status --json")[0]
    assert not _parse("stop --mode sideways")[0]
    assert not _parse("no-such-command")[0]
    assert _parse("--duration 6h")[0]  # bare options mean 'run'


@pytest.mark.parametrize("doc", [README_MD, RUNBOOK_MD, CONFIG_MD], ids=lambda p: p.name)
def test_every_quoted_command_line_parses(doc: Path) -> None:
    cmds = _concrete(doc)
    assert cmds, f"no python run.py command found in {doc.name}"
    bad = []
    for c in cmds:
        ok, err = _parse(c)
        if not ok:
            bad.append(f"python run.py {c}\n    -> {err.splitlines()[-1] if err else 'exit'}")
    assert not bad, f"{doc.name} quotes command lines run.py rejects:\n" + "\n".join(bad)


def test_runbook_covers_the_operator_commands() -> None:
    firsts = set()
    for c in _concrete(RUNBOOK_MD):
        tokens = shlex.split(c)
        firsts.add(tokens[0] if tokens and not tokens[0].startswith("-") else "run")
    for sub in ("run", "status", "stop", "resume", "config", "sim"):
        assert sub in firsts, f"docs/RUNBOOK.md quotes no 'python run.py {sub} ...' line"


# -- log events -------------------------------------------------------------------------------------
_EVENT_RE = re.compile(r"^[A-Z][A-Z0-9_]+$")
#: Event names built at run time (not string literals at the call site).
DYNAMIC_EVENTS = (
    "ORDER_DONE", "ORDER_CANCELED", "ORDER_REJECTED", "ORDER_EXPIRED",  # models.oms._ended
    "VENUEBANNED", "RATELIMITED", "STREAMDISCONNECTED",  # actors.gateway._route
)


def logged_event_names() -> dict[str, str]:
    """Event name -> first place it is logged, from ``log_event("X")``, ``_log("X")``,
    ``log("X")`` (supervision.children), ``fx.log("X")`` (effects of the pure cores) and
    ``logger.bind(event="X")``."""
    found: dict[str, str] = {}
    files = [ROOT / "run.py"] + [p for d in CODE_DIRS for p in sorted((ROOT / d).rglob("*.py"))]
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            cands: list[ast.expr] = []
            if node.args and (name in ("log_event", "_log") or (
                    name == "log" and isinstance(f, ast.Name)) or (
                    name == "log" and isinstance(f, ast.Attribute)
                    and isinstance(f.value, ast.Name) and f.value.id == "fx")):
                cands.append(node.args[0])
            cands += [kw.value for kw in node.keywords if kw.arg == "event"]
            for c in cands:
                if isinstance(c, ast.Constant) and isinstance(c.value, str) \
                        and _EVENT_RE.match(c.value):
                    found.setdefault(c.value, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_event_scan_finds_known_events() -> None:
    names = logged_event_names()
    for ev in ("ORDER_PLACED", "ACTOR_RESTARTED", "RECONNECTED", "STATUS", "BOT_READY"):
        assert ev in names


def test_every_log_event_is_explained_in_the_runbook() -> None:
    text = RUNBOOK_MD.read_text(encoding="utf-8")
    names = logged_event_names()
    names.update({ev: "dynamic" for ev in DYNAMIC_EVENTS})
    missing = sorted(f"{ev} ({where})" for ev, where in names.items() if f"`{ev}`" not in text)
    assert not missing, "log events not explained in docs/RUNBOOK.md: " + ", ".join(missing)


def test_the_api_doc_lists_every_message_type() -> None:
    from models.messages import ALL_MESSAGE_TYPES

    text = (ROOT / "docs" / "API.md").read_text()
    listed = set(re.findall(r"^\| `(\w+)` \|", text, re.M))
    names = {t.__name__ for t in ALL_MESSAGE_TYPES}
    assert names - listed == set(), "add them to docs/API.md's message catalogue"
    assert {n for n in listed if n[0].isupper()} <= names, "stale rows in docs/API.md"
