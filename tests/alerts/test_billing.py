"""Billing input: MQTT payload validation, CSV import (row-numbered rejects), the CLI sub-command."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from ingest.alerts.costcontrol.billing import apply_billing, import_csv, parse_billing_topic
from ingest.alerts.costcontrol.ledger import Ledger
from ingest.billing_cli import register_billing
from ingest.topology import Topology
from protocols.errors import ContractError

NOW = 1_710_000_000.0
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def topology() -> Topology:
    return Topology.load(EXAMPLES / "topology.yaml")


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger.sqlite")


def _account(ledger: Ledger, topology: Topology, account: str = "A-0001") -> None:
    apply_billing(ledger, account, "account", {"tariff_cny_kwh": 0.5}, now=NOW, topology=topology)


def test_topic_parsing() -> None:
    assert parse_billing_topic("gridedge/v1/billing/A-0001/payment") == ("A-0001", "payment")
    assert parse_billing_topic("gridedge/v1/billing/tariff", {"account": "B-1"}) == ("B-1", "tariff")
    with pytest.raises(ContractError) as missing:
        parse_billing_topic("gridedge/v1/billing/payment", {})
    assert missing.value.field == "$.account"
    for bad in ("gridedge/v1/billing/refund", "gridedge/v1/billing/A-1/refund", "x/v1/billing/A/payment"):
        with pytest.raises(ContractError) as exc:
            parse_billing_topic(bad)
        assert exc.value.field == "topic"


def test_account_takes_meter_and_class_from_the_topology(ledger: Ledger, topology: Topology) -> None:
    _account(ledger, topology, "A-0004")
    acc = ledger.account("A-0004")
    assert acc is not None and (acc.gw, acc.dev) == ("gw-demo-01", "000000000004")
    assert acc.customer_class == "commercial" and acc.mode == "remote" and not acc.keep_power


def test_account_errors_name_the_field(ledger: Ledger, topology: Topology) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"tariff_cny_kwh": 0.5}, "A-9999", "$.meter"),  # not in the topology
        ({}, "A-0001", "$.tariff_cny_kwh"),  # a new account needs a tariff
        ({"tariff_cny_kwh": 0.5, "mode": "prepaid"}, "A-0001", "$.mode"),
        ({"tariff_cny_kwh": 0.5, "meter": "no-slash"}, "A-0001", "$.meter"),
        ({"tariff_cny_kwh": -1}, "A-0001", "$.tariff_cny_kwh"),
        ({"tariff_cny_kwh": 0.5, "colour": "red"}, "A-0001", "$"),
    ]
    for data, account, field in cases:
        with pytest.raises(ContractError) as exc:
            apply_billing(ledger, account, "account", data, now=NOW, topology=topology)
        assert exc.value.field == field, (data, exc.value)


def test_meter_cannot_belong_to_two_accounts(ledger: Ledger, topology: Topology) -> None:
    _account(ledger, topology)
    with pytest.raises(ContractError, match="already belongs"):
        data = {"tariff_cny_kwh": 0.5, "meter": "gw-demo-01/000000000001"}
        apply_billing(ledger, "X-1", "account", data, now=NOW, topology=topology)


def test_payment_validation_and_idempotence(ledger: Ledger, topology: Topology) -> None:
    _account(ledger, topology)
    pay = {"id": "P-1", "amount_cny": 30.0, "ts": int(NOW * 1000)}
    assert apply_billing(ledger, "A-0001", "payment", pay, now=NOW) == "applied"
    assert apply_billing(ledger, "A-0001", "payment", pay, now=NOW) == "duplicate"
    assert ledger.balance("A-0001") == pytest.approx(30.0)
    bad: list[tuple[dict[str, Any], str]] = [
        ({"id": "P-2", "amount_cny": "30"}, "$.amount_cny"),
        ({"amount_cny": 30.0}, "$.id"),
        ({"id": "P-2", "amount_cny": 0}, "$.amount_cny"),
        ({"id": "P-2", "amount_cny": 1, "ts": 1700000000}, "$.ts"),  # seconds, not ms
    ]
    for data, field in bad:
        with pytest.raises(ContractError) as exc:
            apply_billing(ledger, "A-0001", "payment", data, now=NOW)
        assert exc.value.field == field
    with pytest.raises(ContractError) as exc:
        apply_billing(ledger, "A-0002", "payment", {"id": "P-3", "amount_cny": 1.0}, now=NOW)
    assert exc.value.field == "account"


def test_tariff_change(ledger: Ledger, topology: Topology) -> None:
    _account(ledger, topology)
    data = {"tariff_cny_kwh": 0.6, "tariffs": [1.0, 0.8, 0.5, 0.3], "id": "T-1"}
    assert apply_billing(ledger, "A-0001", "tariff", data, now=NOW) == "applied"
    assert apply_billing(ledger, "A-0001", "tariff", data, now=NOW) == "duplicate"
    acc = ledger.account("A-0001")
    assert acc is not None and acc.tariff == 0.6 and acc.tariffs == (1.0, 0.8, 0.5, 0.3)
    with pytest.raises(ContractError) as exc:
        apply_billing(ledger, "A-0001", "tariff", {"tariff_cny_kwh": 0.6, "tariffs": [1.0]}, now=NOW)
    assert exc.value.field == "$.tariffs"


def test_sample_csv_imports_cleanly(ledger: Ledger, topology: Topology) -> None:
    report = import_csv(EXAMPLES / "billing.csv", ledger, now=NOW, topology=topology)
    assert report.rejected == [] and report.applied == 6
    assert ledger.balance("A-0001") == pytest.approx(100.0)
    assert ledger.balance("A-0011") == pytest.approx(500.0)
    acc = ledger.account("A-0004")
    assert acc is not None and acc.keep_power and acc.tariffs == (1.2, 0.9, 0.6, 0.3)
    again = import_csv(EXAMPLES / "billing.csv", ledger, now=NOW, topology=topology)
    assert (again.applied, again.duplicate, again.rejected) == (0, 6, [])


def test_csv_bad_rows_are_reported_by_row_number_and_good_rows_kept(
    tmp_path: Path, ledger: Ledger, topology: Topology
) -> None:
    csv_file = tmp_path / "pay.csv"
    csv_file.write_text(
        "kind,account,id,ts,amount_cny,tariff_cny_kwh,meter\n"
        "account,A-0001,,,,0.5,\n"  # row 2
        "payment,A-0001,P-1,2024-03-01 09:00,40,,\n"  # row 3
        "payment,A-0001,P-2,,forty,,\n"  # row 4: bad amount
        "payment,A-0001,P-1,,40,,\n"  # row 5: duplicate
        "refund,A-0001,P-3,,40,,\n"  # row 6: bad kind
        "payment,A-0001,P-4,yesterday,5,,\n"  # row 7: bad ts
        "payment,A-0001,P-5,1709251200000,10,,\n",  # row 8 (an hour earlier)
        encoding="utf-8",
    )
    report = import_csv(csv_file, ledger, now=NOW, topology=topology)
    assert (report.applied, report.duplicate) == (3, 1)
    assert [row for row, _ in report.rejected] == [4, 6, 7]
    assert report.rejected[0][1].startswith("amount_cny:")
    assert report.rejected[1][1].startswith("kind:")
    assert report.rejected[2][1].startswith("ts:")
    assert ledger.balance("A-0001") == pytest.approx(50.0)
    assert ledger.last_payment("A-0001") == ("P-1", 40.0, 1709254800.0)  # 09:00 +08:00 = 01:00Z


def test_csv_with_unknown_column_is_refused(tmp_path: Path, ledger: Ledger) -> None:
    csv_file = tmp_path / "x.csv"
    csv_file.write_text("kind,account,colour\npayment,A-1,red\n", encoding="utf-8")
    report = import_csv(csv_file, ledger, now=NOW)
    assert report.rejected and report.rejected[0][0] == 1 and "colour" in report.rejected[0][1]


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gridedge ingest")
    register_billing(parser.add_subparsers(dest="ingest_command", required=True))
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


def test_cli_import_with_ledger_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cli.sqlite"
    csv_file = tmp_path / "a.csv"
    csv_file.write_text(
        "kind,account,id,meter,tariff_cny_kwh,amount_cny\n"
        "account,Z-1,,gw-1/m1,0.5,\npayment,Z-1,P-1,,,12.5\npayment,Z-1,P-2,,,-1\n",
        encoding="utf-8",
    )
    assert _cli(["billing", "import", str(csv_file), "--ledger", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "applied 2, duplicate 0, rejected 1" in out and "row 4: amount_cny" in err
    with Ledger(path) as led:
        assert led.balance("Z-1") == pytest.approx(12.5)


def test_cli_takes_ledger_path_and_topology_from_ingest_yaml(tmp_path: Path) -> None:
    (tmp_path / "topology.yaml").write_text((EXAMPLES / "topology.yaml").read_text(), encoding="utf-8")
    cfg = tmp_path / "ingest.yaml"
    cfg.write_text(
        "topology: topology.yaml\nalerts:\n  rules:\n    costcontrol:\n      ledger_path: state/led.sqlite\n",
        encoding="utf-8",
    )
    assert _cli(["billing", "import", str(EXAMPLES / "billing.csv"), "-c", str(cfg)]) == 0
    with Ledger(tmp_path / "state" / "led.sqlite") as led:
        assert led.balance("A-0001") == pytest.approx(100.0)
