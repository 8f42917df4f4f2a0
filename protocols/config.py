"""Config conventions shared by every service: YAML validated by typed pydantic models, with
environment overrides `GRIDEDGE_<SECTION>__<KEY>` (e.g. GRIDEDGE_MQTT__PORT=1884).

One shell may hold the overrides of several programs (the gateway's spool, the ingest's influx, both
their mqtt): an override for a section this program's config does not have is ignored (logged once, at
info level); a wrong key inside a section it has is an error naming the variable.

Layer: protocols: parses text it is given; the caller reads the file and passes `os.environ` (only
`secret_problems` looks at the disk: the modes of the config and secret files).
Errors name the file, the line and the field (`gateway.yaml:12: buses[0].baud: ...`).
"""

from __future__ import annotations

import logging
import stat
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Final, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from .errors import ConfigError

ENV_PREFIX: Final = "GRIDEDGE_"

log = logging.getLogger(__name__)

C = TypeVar("C", bound=BaseModel)


class Frozen(BaseModel):
    """Base of every config model: frozen, unknown fields are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def _http_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} must be http://HOST[:PORT][/PATH] or https://...")
    try:
        parts.port  # noqa: B018 (raises for a port that is not a number in 0-65535)
    except ValueError:
        raise ValueError(f"{url!r}: the port must be a number from 0 to 65535") from None
    return url


# An http(s) URL with a host, checked when the config is loaded (`... check` refuses it, naming the
# file, line and field), not when the first request is made.
HttpUrl = Annotated[str, AfterValidator(_http_url)]


class Locator:
    """Maps a field path (as in pydantic's `loc`) to `file:line`, for errors found after validation
    (duplicate addresses, airtime over budget, ...)."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        try:
            self._node: yaml.Node | None = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            self._node = None

    def __call__(self, loc: tuple[Any, ...]) -> str:
        return f"{self.source}:{_line_of(self._node, loc)}: {_dotted(loc)}"


def load(model: type[C], text: str, *, source: str, environ: Mapping[str, str] | None = None) -> C:
    """Parse YAML `text`, apply environment overrides and validate into `model`."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError([f"{source}{line}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{source}:1: the top level must be a mapping of sections"])
    overridden = apply_env(data, _own_sections(model, environ or {}, source))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, node, source, overridden)) from None


def _own_sections(model: type[BaseModel], environ: Mapping[str, str], source: str) -> dict[str, str]:
    """The overrides of `environ` whose section is a field of `model`; the others belong to another
    program sharing the shell (the sim has no `mqtt`, the ingest no `spool`) and are only logged."""
    names = set(model.model_fields) | {f.alias for f in model.model_fields.values() if f.alias}
    own: dict[str, str] = {}
    ignored: list[str] = []
    for name, raw in environ.items():
        path = _env_path(name)
        if path is None:
            continue
        if path[0] in names:
            own[name] = raw
        else:
            ignored.append(name)
    if ignored:
        log.info(
            "%s: ignoring environment override(s) for sections this config does not have: %s",
            source,
            ", ".join(sorted(ignored)),
        )
    return own


def _env_path(name: str) -> tuple[str, ...] | None:
    """GRIDEDGE_A__B__C -> ("a", "b", "c"); None for a variable that is not an override."""
    if not name.startswith(ENV_PREFIX) or "__" not in name:
        return None
    path = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
    return path if all(path) else None


def apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> set[tuple[str, ...]]:
    """Apply GRIDEDGE_A__B__C=value overrides in place; values are parsed as YAML scalars.
    Returns the paths that were overridden (so errors can say the value came from the environment)."""
    paths: set[tuple[str, ...]] = set()
    for name, raw in sorted(environ.items()):
        path = _env_path(name)
        if path is None:
            continue
        target = data
        for part in path[:-1]:
            nxt = target.get(part)
            if not isinstance(nxt, dict):
                nxt = target[part] = {}
            target = nxt
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        target[path[-1]] = value
        paths.add(path)
    return paths


def _describe(
    exc: ValidationError, node: yaml.Node | None, source: str, env: set[tuple[str, ...]]
) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        field = _dotted(err["loc"])
        env_name = _env_origin(loc, env, err["type"])
        if env_name:
            where = f"{source} (from environment {env_name})"
        else:
            where = f"{source}:{_line_of(node, err['loc'])}"
        problems.append(f"{where}: {field or '(top level)'}: {err['msg']}")
    return problems


def _env_origin(loc: tuple[str, ...], env: set[tuple[str, ...]], kind: str) -> str:
    """The variable behind an error at `loc`: one that set `loc` or a value inside it, or (unless
    the error is a missing field) one that went through `loc` (GRIDEDGE_MQTT__PORT__X makes
    `mqtt.port` a mapping)."""
    for path in sorted(env):
        if loc[: len(path)] == path or (loc and kind != "missing" and path[: len(loc)] == loc):
            return ENV_PREFIX + "__".join(p.upper() for p in path)
    return ""


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int:
    """Deepest YAML node along `loc` that exists; its 1-based line."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        child = _child(node, part)
        if child is None:
            break
        key_node, node = child
        line = (key_node or node).start_mark.line + 1
    return line


def _child(node: yaml.Node | None, part: Any) -> tuple[yaml.Node | None, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return key, value
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return None, node.value[part]
    return None


# ---- secrets on disk: one rule for every service's config ---------------------------------------


def secret_problems(
    path: Path, text: str, inline_keys: Iterable[tuple[str, str]], files: Mapping[str, Path | None]
) -> list[str]:
    """Refuse secrets that every local user can read: the config file at `path` (its `text`) holding
    a secret inline (a non-empty `section.key` of `inline_keys`), or one of the secret `files` it
    names, with the world-read bit set. A named secret file that cannot be read is an error too (found
    at start-up rather than at the first connection or command). Returns one message per problem,
    naming the file, the field and the fix."""
    raw = yaml.safe_load(text) or {}
    inline = [f"{s}.{k}" for s, k in inline_keys if isinstance(raw.get(s), dict) and raw[s].get(k)]
    problems = []
    if inline and (why := _world_readable(path)):
        problems.append(
            f"{path}: holds a secret inline ({', '.join(inline)}) and {why}: run `chmod 600 {path}` "
            "(or move the secret to a file readable only by the service, or to the environment)"
        )
    for name, file in files.items():
        if file is None:
            continue
        try:
            why = _world_readable(file)
        except OSError as exc:
            problems.append(f"{path}: {name}: cannot read {file}: {exc.strerror}")
            continue
        if why:
            problems.append(f"{path}: {name}: the secret file {file} {why}: run `chmod 600 {file}`")
    return problems


def _world_readable(path: Path) -> str:
    mode = path.stat().st_mode
    return f"is readable by every user (mode {stat.S_IMODE(mode):04o})" if mode & stat.S_IROTH else ""
