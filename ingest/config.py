"""Ingest configuration (`gridedge ingest run -c ingest.yaml`): typed, frozen, validated once.

Layer: ingest configuration. Environment overrides: GRIDEDGE_<SECTION>__<KEY>, e.g. GRIDEDGE_INFLUX__URL,
GRIDEDGE_MQTT__PORT. Errors name the file, the line and the field. A config file holding a secret
inline, or a secret file it names, that every local user can read is refused (`chmod 600 FILE`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from protocols import topics
from protocols.config import Frozen, HttpUrl
from protocols.config import load as load_model
from protocols.config import secret_problems as shared_secret_problems
from protocols.errors import ConfigError

from .alerts.config import AlertsSection

DEFAULT_TOPICS = [
    topics.gateway_filter(topics.TopicKind.READING),
    topics.gateway_filter(topics.TopicKind.EVENT),
    topics.gateway_filter(topics.TopicKind.HEALTH),
    topics.gateway_filter(topics.TopicKind.STATUS),
]


class MqttSection(Frozen):
    host: str = "localhost"
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str = Field(default="gridedge-ingest", description="fixed: the broker keeps our session")
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    password_file: Path | None = None
    tls_ca_file: Path | None = None
    topics: list[str] = Field(default_factory=lambda: list(DEFAULT_TOPICS))
    shared_group: str | None = Field(default=None, description="subscribe as $share/GROUP/... to split load")
    max_unacked: int = Field(default=2000, ge=1, le=65535, description="messages in flight to us")
    session_expiry_s: int = Field(default=7 * 86400, ge=0)
    keepalive_s: int = Field(default=30, ge=5)

    def secret(self) -> str | None:
        if self.password_file is not None:
            return self.password_file.read_text().strip()
        return self.password

    def filters(self) -> list[str]:
        if self.shared_group:
            return [f"$share/{self.shared_group}/{t}" for t in self.topics]
        return list(self.topics)


class InfluxSection(Frozen):
    url: HttpUrl = "http://127.0.0.1:8086"
    version: Literal[1, 2] = 1

    # 1.x
    database: str = "gridedge"
    retention_policy: str = ""
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    password_file: Path | None = Field(default=None, description="read the password from this file")
    # 2.x / 3.x (and 1.8+'s /api/v2 compatibility: bucket "database/retention-policy", token "user:password")
    org: str = Field(default="", description="2.x: the organisation; 3.x and 1.8+ ignore it")
    bucket: str = Field(default="", validate_default=True, description="version 2: where points go")
    token: str | None = Field(default=None, repr=False)
    token_file: Path | None = Field(default=None, description="read the token from this file")
    # batching
    batch_points: int = Field(default=10000, ge=1, le=1_000_000)
    flush_interval_s: float = Field(default=0.2, gt=0, le=60)
    timeout_s: float = Field(default=10.0, gt=0)
    retry_min_s: float = Field(default=0.5, gt=0)
    retry_max_s: float = Field(default=30.0, gt=0)
    create_database: bool = Field(
        default=True,
        description="1.x: CREATE DATABASE at start (idempotent; a user who is not an admin: warned, skipped)",
    )

    @field_validator("bucket")
    @classmethod
    def _bucket_for_v2(cls, bucket: str, info: ValidationInfo) -> str:
        if info.data.get("version") == 2 and not bucket:
            raise ValueError("version 2 writes to a bucket: set influx.bucket (3.x: the database name)")
        return bucket


class MetricsSection(Frozen):
    interval_s: float = Field(default=10.0, gt=0)
    instance: str = Field(default="", description="tag for this writer (default: the MQTT client id)")
    prometheus_port: int | None = Field(default=None, ge=0, le=65535)


class IngestConfig(Frozen):
    mqtt: MqttSection = MqttSection()
    influx: InfluxSection = InfluxSection()
    topology: Path | None = None
    metrics: MetricsSection = MetricsSection()
    alerts: AlertsSection = AlertsSection()


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> IngestConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    cfg = load_model(IngestConfig, text, source=str(path), environ=os.environ if environ is None else environ)
    if cfg.topology is not None and not cfg.topology.is_absolute():
        cfg = cfg.model_copy(update={"topology": path.parent / cfg.topology})
    if not cfg.alerts.state_path.is_absolute():
        alerts = cfg.alerts.model_copy(update={"state_path": path.parent / cfg.alerts.state_path})
        cfg = cfg.model_copy(update={"alerts": alerts})
    if problems := secret_problems(path, text, cfg):
        raise ConfigError(problems)
    cfg = _read_influx_secrets(cfg)
    return cfg


def _read_influx_secrets(cfg: IngestConfig) -> IngestConfig:
    """`influx.password_file` / `token_file` (checked readable by `secret_problems`) win over the
    inline or environment value."""
    influx = cfg.influx
    update = {}
    if influx.password_file is not None:
        update["password"] = influx.password_file.read_text().strip()
    if influx.token_file is not None:
        update["token"] = influx.token_file.read_text().strip()
    return cfg.model_copy(update={"influx": influx.model_copy(update=update)}) if update else cfg


# ---- secrets on disk (the same check as gateway/config.py; the two services share no code) --------

_INLINE_SECRETS: tuple[tuple[str, str], ...] = (
    ("mqtt", "password"),
    ("influx", "password"),
    ("influx", "token"),
)


def secret_problems(path: Path, text: str, cfg: IngestConfig) -> list[str]:
    """Refuse secrets that every local user can read: a config file holding a secret inline, or a
    secret file it names, with the world-read bit set. A named secret file that cannot be read is an
    error too (found now rather than at the first connection)."""
    files = {
        "mqtt.password_file": cfg.mqtt.password_file,
        "influx.password_file": cfg.influx.password_file,
        "influx.token_file": cfg.influx.token_file,
    }
    autocontrol = cfg.alerts.autocontrol
    if autocontrol.enabled and autocontrol.key_file is not None:  # relative: the alert state's folder
        files["alerts.autocontrol.key_file"] = cfg.alerts.state_path.parent / autocontrol.key_file
    return shared_secret_problems(path, text, _INLINE_SECRETS, files)
