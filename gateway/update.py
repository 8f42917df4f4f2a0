"""The `update` command: a signed software update, verified and installed beside the running release.

Layer: gateway core. A command to the gateway itself (`gridedge/v1/{gw}/gateway/cmd`), action
`update`, params `url` (http, https or file: MQTT payloads are small, so the artifact is fetched) and
`signature` (the `ARTIFACT.sig` document written by `gridedge release sign`; an optional `sha256` must
agree with it). The command itself must be signed with an operator's Ed25519 key: an HMAC key is held
by the gateways, and one of them could replay an old, validly signed release at the others.

Order: the signature document is verified against `commands.public_keys` (gateway.release) before
anything is fetched; the download is hashed and compared with the signed SHA-256 before anything is
unpacked; then `releases/<version>/venv` is installed offline from the artifact's wheels while the
gateway keeps polling. Only then does the updater ask the gateway to stop (`pending` is set and the
stop event fired); `gateway.app.run` hands over to `gateway.update_trial`, which runs the new release
on trial and publishes the final result (`done` with the new version running, or `failed` and the old
one back). Must not: touch `current` (update_trial does, once the new release is healthy).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from protocols import messages as m
from protocols.signing import ED25519, PublicKey
from protocols.version import VERSION

from . import release
from .commands import Reply
from .config import GatewayConfig
from .release import Layout, Signed, UpdateError

audit = logging.getLogger("gateway.audit")

ACTION: Final = "update"  # on the gateway's own device (gateway.commands.GATEWAY_DEV)
# refusals of what was sent (a result `rejected`); the others (fetch, install) are `failed`
_REFUSALS: Final = frozenset(
    {"alg_not_accepted", "bad_signature", "unknown_key", "no_key", "malformed", "hash_mismatch", "same"}
)


@dataclass(frozen=True)
class Candidate:
    """An installed release waiting for its trial, and the command that asked for it."""

    command_id: str
    gw: str
    signed: Signed
    release: Path
    previous_version: str = VERSION


@dataclass(frozen=True)
class UpdateSettings:
    root: Path
    downloads: Path
    public_keys: tuple[PublicKey, ...]
    share_site_packages: bool = False


class Updater:
    """The `update` gateway action (gateway.commands.GatewayAction); `pending` holds the candidate
    once it is installed."""

    def __init__(self, settings: UpdateSettings, stop: asyncio.Event) -> None:
        self.settings = settings
        self.layout = Layout(settings.root)
        self.stop = stop
        self.pending: Candidate | None = None
        self._busy = False

    async def __call__(self, command: m.Command, reply: Reply) -> None:
        if problem := self._problem(command):
            await reply("rejected", reason=problem)
            return
        await reply("accepted")
        self._busy = True
        try:
            candidate = await self._prepare(command)
        except UpdateError as exc:
            status: m.CommandStatus = "rejected" if exc.code in _REFUSALS else "failed"
            await reply(status, reason=f"{exc.code}: {exc.reason}")
            return
        finally:
            self._busy = False
        audit.warning(
            "update %s: %s installed in %s (signed by %s); handing over for its trial",
            command.id,
            candidate.signed.version,
            candidate.release,
            candidate.signed.key,
        )
        self.pending = candidate
        self.stop.set()  # gateway.app.run hands over to update_trial once serve() has returned

    def _problem(self, command: m.Command) -> str:
        """Why `command` cannot start an update now ('' if it can)."""
        if command.alg != ED25519:
            return (
                "an update must be signed with an operator's Ed25519 key, not a shared HMAC key "
                "(a gateway holds that key and could replay an old release at the others)"
            )
        params = command.params
        if not isinstance(params.get("url"), str) or not params["url"]:
            return "update needs params.url (http, https or file) of the artifact"
        if not isinstance(params.get("signature"), dict | str):
            return "update needs params.signature (the ARTIFACT.sig document)"
        if self._busy or self.pending is not None:
            return "an update is already in progress"
        return ""

    async def _prepare(self, command: m.Command) -> Candidate:
        params = command.params
        doc = params["signature"]
        if isinstance(doc, str):
            doc = release.read_signature(doc)
        signed = release.check_signature(doc, self.settings.public_keys)
        if (sha := params.get("sha256")) is not None and str(sha).lower() != signed.sha256:
            raise UpdateError("hash_mismatch", "params.sha256 is not the signed SHA-256")
        if signed.version == VERSION:
            raise UpdateError("same", f"version {VERSION} is the one running")
        url = str(params["url"])
        artifact = await asyncio.to_thread(release.fetch, url, signed, self.settings.downloads)
        try:
            installed = await asyncio.to_thread(
                release.install,
                artifact,
                self.layout,
                signed.version,
                share_site_packages=self.settings.share_site_packages,
            )
        finally:
            artifact.unlink(missing_ok=True)
        return Candidate(command.id, command.gw, signed, installed)


def settings_from(cfg: GatewayConfig) -> UpdateSettings:
    """The updater's settings from the config's `update` and `commands` sections."""
    return UpdateSettings(
        root=cfg.update.root,
        downloads=cfg.gateway.state_dir / "updates",
        public_keys=cfg.commands.keys().public_keys,
        share_site_packages=cfg.update.share_site_packages,
    )
