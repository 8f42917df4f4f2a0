"""Fixtures of the security tests: a session PKI (made by `openssl`) and brokers that require it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.security.pki import Pki, SecureBroker, make_pki, start_secure_broker

PASSWORDS = {
    "gw-test": "gw-Pa55-7f3c91d2",
    "gw-a": "gw-a-Pa55-0b8e14aa",
    "gw-b": "gw-b-Pa55-55d0c3e1",
    "gridedge-ingest": "ingest-Pa55-c4e2a9b0",
    "gridedge-operator": "operator-Pa55-19fe6d73",
}


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def secure_broker(tmp_path: Path, pki: Pki) -> Iterator[SecureBroker]:
    """TLS + password file, no ACL."""
    broker = start_secure_broker(tmp_path / "secure-broker", pki, PASSWORDS)
    yield broker
    broker.stop()
