"""The field engineer's documents are true: the sample configs load, and every command line they show
parses.

- Each `examples/devices/*.yaml` is loaded by the gateway's own loader, twice: as shipped (schema,
  addresses, register maps and DL/T 645 items, airtime budget; port existence skipped because the
  sample's `/dev/serial/by-id/...` paths are not on this machine), and through `load_config` exactly as
  `gridedge gateway check` does, with its serial ports moved to real pseudo-terminals and its secret
  files moved to mode-600 temporary files via the same GRIDEDGE_<SECTION>__<KEY> overrides the
  services use.
- Every `gridedge ...` command in README.md, docs/field-guide.md, docs/adding-a-device-kind.md and
  the `Exec` lines of deploy/*.service names sub-commands and options that exist in the CLI's argparse
  tree (gridedge/cli.py), so no document teaches a flag that is not there.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shlex
import tty
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import get_args

import pytest
import yaml

from gateway.config import GatewayConfig, compile_plan, load_config
from gateway.drivers.registry import DeviceConfig
from gridedge.cli import build_parser
from protocols import config as conventions
from protocols.config import Locator

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "examples" / "devices").glob("*.yaml"))
DOCS = [ROOT / "README.md", ROOT / "docs" / "field-guide.md", ROOT / "docs" / "adding-a-device-kind.md"]
UNITS = sorted((ROOT / "deploy").glob("*.service"))


# ---- sample configs ------------------------------------------------------------------------------


def registered_kinds() -> set[str]:
    """Every `kind:` the gateway accepts, from the discriminated union in gateway/drivers/registry.py."""
    (union, *_) = get_args(DeviceConfig)
    return {get_args(model.model_fields["kind"].annotation)[0] for model in get_args(union)}


def test_there_is_a_sample_per_device_kind() -> None:
    assert registered_kinds() >= {"dlt645", "modbus", "hall"}
    assert {p.stem for p in SAMPLES} == registered_kinds()


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_sample_validates_as_shipped(sample: Path) -> None:
    text = sample.read_text()
    cfg = conventions.load(GatewayConfig, text, source=str(sample), environ={})
    plan = compile_plan(cfg, Locator(text, str(sample)), check_ports=False)
    kind = sample.stem
    assert all(dev.kind == kind for bus in cfg.buses for dev in bus.devices), "one kind per sample"
    assert not any(b.over for b in plan.budgets), plan.budgets
    assert "#" in text, "the samples are commented"


@pytest.fixture
def make_pty() -> Iterator[Callable[[], str]]:
    """Open as many raw pseudo-terminals as a test needs (the `pty_pair` recipe, several times)."""
    fds: list[int] = []

    def make() -> str:
        master, slave = os.openpty()
        tty.setraw(slave)
        fds.extend((master, slave))
        return os.ttyname(slave)

    yield make
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_sample_passes_the_gateway_loader(sample: Path, tmp_path: Path, make_pty: Callable[[], str]) -> None:
    text = sample.read_text()
    serial_ports = re.findall(r"^\s*port:\s*(/dev/\S+)", text, flags=re.M)
    assert serial_ports or sample.stem == "modbus"
    for port in serial_ports:
        text = text.replace(port, make_pty())
    config = tmp_path / "gateway.yaml"
    config.write_text(text)
    config.chmod(0o640)
    raw = yaml.safe_load(text)
    environ = {"GRIDEDGE_GATEWAY__STATE_DIR": str(tmp_path / "state")}
    for section, key in (("mqtt", "password_file"), ("commands", "key_file")):
        if raw.get(section, {}).get(key):
            secret = tmp_path / f"{section}-{key}"
            secret.write_text("not-a-real-secret\n")
            secret.chmod(0o600)
            environ[f"GRIDEDGE_{section.upper()}__{key.upper()}"] = str(secret)
    plan = load_config(config, environ=environ)  # raises ConfigError listing every problem
    assert [b.name for b in plan.config.buses] == [b["name"] for b in raw["buses"]]
    assert all(not b.over for b in plan.budgets)


# ---- command lines in the documents --------------------------------------------------------------

_SEPARATORS = {"&&", "||", ";", "|", "&", ">", ">>", "2>&1"}
_COMMAND_STARTS = {None, "sudo", "exec", "then", "do", "$", *_SEPARATORS}


def _code(text: str) -> Iterator[str]:
    """Every line of a fenced code block and every inline code span."""
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            yield line
        else:
            yield from re.findall(r"`([^`\n]+)`", line)


def _tokens(line: str) -> list[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError:
        return line.split("#", 1)[0].split()


def commands(text: str) -> Iterator[list[str]]:
    """The argument lists of every `gridedge ...` invocation in `text`'s code."""
    for line in _code(text):
        tokens = _tokens(line)
        for i, tok in enumerate(tokens):
            prev = tokens[i - 1] if i else None
            starts = prev in _COMMAND_STARTS or (
                prev is not None and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", prev)
            )
            if tok.endswith("/bin/gridedge") or (tok == "gridedge" and starts):
                args = []
                for arg in tokens[i + 1 :]:
                    if arg in _SEPARATORS:
                        break
                    args.append(arg)
                if args:  # a bare `gridedge` is the name of the user or the project
                    yield args


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {opt: a for a in parser._actions for opt in a.option_strings}


def check_command(root: argparse.ArgumentParser, args: list[str]) -> list[str]:
    """Problems of one invocation: unknown sub-commands or options (placeholders and values pass)."""
    parser, path, problems = root, ["gridedge"], []
    skip_value = False
    for raw in args:
        if skip_value:
            skip_value = False
            continue
        tok = raw.strip("[]")
        subs = _subparsers(parser)
        if tok.startswith("-") and tok not in ("-", "--"):
            name = tok.split("=", 1)[0]
            action = _options(parser).get(name)
            if action is None:
                problems.append(f"`{' '.join(path)}` has no option {name}")
                continue
            skip_value = action.nargs != 0 and "=" not in tok
        elif subs:
            choices = tok.split("|")
            missing = [c for c in choices if c not in subs]
            if missing:
                problems.append(f"`{' '.join(path)}` has no sub-command {'/'.join(missing)}")
                return problems
            parser, path = subs[choices[0]], [*path, tok]
    if _subparsers(parser) and parser is not root:
        problems.append(f"`{' '.join(path)}` needs a sub-command")
    return problems


def _documented() -> list[tuple[str, list[str]]]:
    found = [(doc.name, args) for doc in DOCS for args in commands(doc.read_text())]
    for unit in UNITS:
        for line in unit.read_text().splitlines():
            if re.match(r"Exec(Start|StartPre|Reload)=", line):
                found += [(unit.name, args) for args in commands(line.split("=", 1)[1])]
    return found


def test_every_documented_command_exists() -> None:
    root = build_parser()
    documented = _documented()
    problems = [
        f"{where}: gridedge {' '.join(args)}: {p}"
        for where, args in documented
        for p in check_command(root, args)
    ]
    assert not problems, "\n".join(problems)
    # the walk is not vacuous: the commissioning flow and both services are found
    seen = {" ".join(a for a in args if not a.startswith("-"))[:14] for _, args in documented}
    for expected in ("scan", "read", "sniff", "gateway check", "gateway run", "ingest run", "demo"):
        assert any(s.startswith(expected) for s in seen), f"no `gridedge {expected}` found in the documents"


def test_the_checker_catches_a_wrong_flag() -> None:
    root = build_parser()
    assert (
        check_command(root, ["scan", "--protocol", "dlt645", "--port", "/dev/ttyUSB0", "--units", "1-5"])
        == []
    )
    assert check_command(root, ["sniff", "--port", "X", "--speed", "9600"]) == [
        "`gridedge sniff` has no option --speed"
    ]
    assert check_command(root, ["gateway", "start", "-c", "x"]) == [
        "`gridedge gateway` has no sub-command start"
    ]
    assert check_command(root, ["sim", "dlt645|modbus", "--port", "pty"]) == []
    text = "```sh\nsudo -u gridedge /opt/gridedge/.venv/bin/gridedge read --nope 1\n```\nthe `gridedge` user"
    assert list(commands(text)) == [["read", "--nope", "1"]]
