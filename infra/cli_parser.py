"""The command line's argparse plumbing: one-line errors (``gridbot CMD: --opt 'value':
what is wrong``), ``--opt -1h`` read as a value, finding the subcommand's parser, and telling a
closed stdout pipe (``gridbot status | head -1``) from a real write failure."""

from __future__ import annotations

import argparse
import re
import select
import sys
from typing import NoReturn

from infra.cli_args import EXIT_BAD_INPUT

_ARGUMENT_RE = re.compile(r"^argument (?P<opt>[^:]+): (?P<msg>.*)$", re.S)
_TYPE_RE = re.compile(r"^invalid (?P<type>\S+) value: (?P<value>'.*')$")
_CHOICE_RE = re.compile(r"^invalid choice: (?P<value>'.*') \(choose from (?P<choices>.*)\)$")


class OneLineParser(argparse.ArgumentParser):
    """argparse with one-line errors (``gridbot CMD: --opt: message``, exit 2) instead of the
    usage block plus an error line; ``--help`` is unchanged."""

    def error(self, message: str) -> NoReturn:
        message = " ".join(message.split())
        m = _ARGUMENT_RE.match(message)
        if m:
            opt, msg = m.group("opt"), m.group("msg")
            c = _CHOICE_RE.match(msg)
            if c and not opt.startswith("-"):  # SUBCOMMAND / ACTION
                noun = {"SUBCOMMAND": "command", "ACTION": "config action"}.get(opt, opt)
                message = (f"{c.group('value')} is not a {noun} (choose from "
                           f"{c.group('choices').replace(chr(39), '')})")
            elif c:
                message = (f"{opt} {c.group('value')}: invalid choice (choose from "
                           f"{c.group('choices').replace(chr(39), '')})")
            elif t := _TYPE_RE.match(msg):  # a type= function raised ValueError/TypeError
                kind = {"int": "a whole number", "float": "a number"}.get(
                    t.group("type"), f"a valid {t.group('type').strip('_')}")
                message = f"{opt} {t.group('value')}: expected {kind}"
            else:  # the validators' messages start with the quoted value
                message = f"{opt} {msg}" if msg.startswith("'") else f"{opt}: {msg}"
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: {message} (see {self.prog} --help)\n")

    def value_options(self) -> dict[str, argparse.Action]:
        """Option strings that take exactly one value."""
        return {o: a for a in self._actions
                if isinstance(a, argparse._StoreAction) and a.nargs is None
                for o in a.option_strings}

    def glue_dash_values(self, tokens: list[str]) -> list[str]:
        """``--duration -1h`` -> ``--duration=-1h``: argparse would read ``-1h`` as an unknown
        option and say 'expected one argument'; glued, the validator names the value."""
        opts = self.value_options()
        known = {o for a in self._actions for o in a.option_strings}
        out: list[str] = []
        i = 0
        while i < len(tokens):
            t = tokens[i]
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            if (t in opts and nxt is not None and nxt.startswith("-") and nxt != "--"
                    and nxt.split("=", 1)[0] not in known):
                out.append(f"{t}={nxt}")
                i += 2
                continue
            out.append(t)
            i += 1
        return out


def subparser_for(parser: argparse.ArgumentParser, tokens: list[str]) -> OneLineParser | None:
    """The (sub)parser that parses ``tokens[...]`` after the command words."""
    current: argparse.ArgumentParser = parser
    for t in tokens[:2]:
        spa = next((a for a in current._actions if isinstance(a, argparse._SubParsersAction)),
                   None)
        if spa is None or t not in spa.choices:
            break
        current = spa.choices[t]
    return current if isinstance(current, OneLineParser) and current is not parser else None


def stdout_is_closed() -> bool:
    """True when stdout is a pipe whose reader has gone (``gridbot status | head -1``)."""
    try:
        fd = sys.__stdout__.fileno() if sys.__stdout__ is not None else 1
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(ev & select.POLLERR for _, ev in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False
