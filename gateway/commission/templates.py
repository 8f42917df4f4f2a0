"""Device templates: what to read from a kind of device, how often, and whether it takes commands.

Layer: gateway commissioning. Must not: touch a port, or know any kind's fields itself: a template's
device entry is validated by the kind's own config model (`gateway/drivers/<kind>/config.py`,
`CONFIG`) and its poll planned by the kind's driver (`poll_airtime_s`: unknown items, points or register
maps are found here), exactly as `gridedge gateway check` does with a config.

A template is a YAML file (`examples/templates/*.yaml`):

    kind: dlt645                       # a registered kind (protocols/kinds.py)
    title: one line for the table
    line: {baud: 2400, parity: E}      # optional; default: the kind's usual settings
    scan: {addresses: 000000000001-000000000032}   # optional defaults of the kind's scan options
    example: {address: "000000000001"}  # what a scan finds, to validate the template without a line
    device:                            # the device entry, with {placeholders} filled from the scan
      id: "{address}"
      address: "{address}"
      interval_s: 300

A string that is exactly one placeholder ("{counters}") takes the found value as it is (a number, a
list); a placeholder inside a longer string is formatted into it ("m-{unit}").
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from protocols import config as conventions
from protocols import kinds
from protocols.config import Frozen
from protocols.errors import ConfigError

from ..drivers.base import DeviceBase
from ..drivers.registry import config_model, driver_class
from ..line import LineSettings

# the shipped templates: examples/templates/ of the source tree (/opt/gridedge on a gateway)
SHIPPED = Path(__file__).resolve().parents[2] / "examples" / "templates"
_WHOLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class TemplateLine(Frozen):
    baud: int | None = Field(default=None, ge=0, le=921600)
    bytesize: Literal[7, 8] | None = None
    parity: Literal["N", "E", "O"] | None = None
    stopbits: Literal[1, 2] | None = None


class TemplateSpec(Frozen):
    kind: str
    title: str
    line: TemplateLine = TemplateLine()
    scan: dict[str, str | int | float] = {}
    example: dict[str, Any] = Field(description="placeholder values as a scan finds them")
    device: dict[str, Any]


@dataclass(frozen=True)
class Template:
    name: str  # the file's stem: what `--template` and the config's comments call it
    path: Path
    spec: TemplateSpec

    @property
    def kind(self) -> str:
        return self.spec.kind

    def line(self) -> LineSettings:
        """The template's line settings over the kind's usual ones (`protocols.kinds`)."""
        kind, own = kinds.get(self.kind), self.spec.line
        return LineSettings(
            baud=kind.baud if own.baud is None else own.baud,
            bytesize=own.bytesize or kind.bytesize,
            parity=own.parity or kind.parity,
            stopbits=own.stopbits or kind.stopbits,
        )

    def entry(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The device entry for what a scan found (`values`), as it goes into the config."""
        try:
            return {"kind": self.kind, **fill(self.spec.device, values)}
        except KeyError as exc:
            raise ConfigError(
                [
                    f"{self.path}: device: placeholder {{{exc.args[0]}}} is not something the {self.kind} "
                    f"scan finds (it finds: {', '.join(sorted(values)) or 'nothing'})"
                ]
            ) from None

    def device(self, values: Mapping[str, Any]) -> DeviceBase:
        """`entry(values)` validated by the kind's config model; ConfigError naming the template."""
        try:
            return config_model(self.kind).model_validate(self.entry(values))
        except ValidationError as exc:
            problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
            raise ConfigError([f"{self.path}: device: {p}" for p in problems]) from None


def fill(node: Any, values: Mapping[str, Any]) -> Any:
    """`node` with its {placeholders} replaced by `values` (KeyError: a placeholder without a value)."""
    if isinstance(node, dict):
        return {key: fill(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [fill(value, values) for value in node]
    if isinstance(node, str):
        if whole := _WHOLE.fullmatch(node):
            return values[whole.group(1)]
        if "{" in node:
            return string.Formatter().vformat(node, (), dict(values))
    return node


def shipped() -> list[str]:
    """The names of the shipped templates."""
    return sorted(p.stem for p in SHIPPED.glob("*.yaml"))


def load_template(name_or_path: str) -> Template:
    """A template by file path or by the name of a shipped one, checked: its example must give a
    device entry the kind's model accepts and a poll its driver can plan (ConfigError otherwise)."""
    path = Path(name_or_path)
    if not path.is_file():
        path = SHIPPED / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ConfigError(
            [
                f"--template {name_or_path}: no such file and no such shipped template "
                f"(shipped: {', '.join(shipped()) or 'none'})"
            ]
        )
    spec = conventions.load(TemplateSpec, path.read_text(), source=str(path), environ={})
    if spec.kind not in kinds.names():
        raise ConfigError([f"{path}: kind: {spec.kind!r} is not registered ({', '.join(kinds.names())})"])
    template = Template(path.stem, path, spec)
    check(template)
    return template


def check(template: Template) -> DeviceBase:
    """The template's example as a device, with its poll planned at the template's line settings."""
    device = template.device(template.spec.example)
    try:
        driver_class(template.kind).poll_airtime_s(device, template.line())
    except ConfigError as exc:
        raise ConfigError([f"{template.path}: device: {p}" for p in exc.problems]) from None
    return device
