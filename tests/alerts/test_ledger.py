"""The cost-control ledger: balance from readings x tariff, idempotent payments, persistence."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ingest.alerts.costcontrol.ledger import Account, Ledger

T0 = 1_700_000_000.0
MS = 1000


def _ms(t: float) -> int:
    return int(t * MS)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    led = Ledger(tmp_path / "ledger.sqlite")
    led.upsert_account(Account("A-1", "gw-1", "m1", tariff=0.5, opening=100.0, created_at=T0))
    return led


def test_balance_is_opening_plus_payments_minus_energy_times_tariff(ledger: Ledger) -> None:
    assert ledger.record_sample("gw-1", "m1", _ms(T0), {"energy_import_kwh": 1000.0}) is not None
    charge = ledger.record_sample("gw-1", "m1", _ms(T0 + 60), {"energy_import_kwh": 1010.0})
    assert charge is not None and charge.kwh == pytest.approx(10.0) and charge.cny == pytest.approx(5.0)
    assert ledger.balance("A-1") == pytest.approx(95.0)
    assert ledger.apply_payment("P-1", "A-1", 20.0, T0 + 100)
    assert ledger.balance("A-1") == pytest.approx(115.0)
    assert ledger.balances() == {"A-1": pytest.approx(115.0)}


def test_older_or_equal_samples_are_ignored(ledger: Ledger) -> None:
    ledger.record_sample("gw-1", "m1", _ms(T0 + 60), {"energy_import_kwh": 1010.0})
    assert ledger.record_sample("gw-1", "m1", _ms(T0), {"energy_import_kwh": 1000.0}) is None
    assert ledger.record_sample("gw-1", "m1", _ms(T0 + 60), {"energy_import_kwh": 1020.0}) is None
    ledger.record_sample("gw-1", "m1", _ms(T0 + 120), {"energy_import_kwh": 1012.0})
    assert ledger.consumed_kwh("A-1") == pytest.approx(2.0)


def test_unknown_meter_and_sample_without_register_are_ignored(ledger: Ledger) -> None:
    assert ledger.record_sample("gw-1", "other", _ms(T0), {"energy_import_kwh": 1.0}) is None
    assert ledger.record_sample("gw-1", "m1", _ms(T0), {"voltage_a_v": 220.0}) is None


def test_duplicate_payment_is_applied_once(ledger: Ledger) -> None:
    assert ledger.apply_payment("P-9", "A-1", 50.0, T0)
    assert not ledger.apply_payment("P-9", "A-1", 50.0, T0)
    assert ledger.balance("A-1") == pytest.approx(150.0)
    assert ledger.last_payment("A-1") == ("P-9", 50.0, T0)


def test_tariff_change_applies_from_the_next_reading_only(ledger: Ledger) -> None:
    ledger.record_sample("gw-1", "m1", _ms(T0), {"energy_import_kwh": 0.0})
    ledger.record_sample("gw-1", "m1", _ms(T0 + 60), {"energy_import_kwh": 10.0})  # 10 x 0.5
    assert ledger.change_tariff("T-1", "A-1", 1.0, (), T0 + 61)
    assert not ledger.change_tariff("T-1", "A-1", 2.0, (), T0 + 62)  # duplicate id
    ledger.record_sample("gw-1", "m1", _ms(T0 + 120), {"energy_import_kwh": 20.0})  # 10 x 1.0
    assert ledger.balance("A-1") == pytest.approx(100.0 - 5.0 - 10.0)


def test_time_of_use_registers_are_charged_at_their_own_rates(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite") as led:
        led.upsert_account(Account("A-2", "gw-1", "m2", 0.5, (1.0, 0.5, 0.25, 0.1), opening=0.0))
        regs = {"energy_import_kwh": 0.0, **{f"energy_import_t{i}_kwh": 0.0 for i in range(1, 5)}}
        led.record_sample("gw-1", "m2", _ms(T0), regs)
        later = {"energy_import_kwh": 4.0, **{f"energy_import_t{i}_kwh": 1.0 for i in range(1, 5)}}
        led.record_sample("gw-1", "m2", _ms(T0 + 60), later)
        assert led.balance("A-2") == pytest.approx(-(1.0 + 0.5 + 0.25 + 0.1))


def test_register_going_down_rebases_without_a_charge(ledger: Ledger) -> None:
    ledger.record_sample("gw-1", "m1", _ms(T0), {"energy_import_kwh": 500.0})
    ledger.record_sample("gw-1", "m1", _ms(T0 + 60), {"energy_import_kwh": 3.0})  # meter exchanged
    ledger.record_sample("gw-1", "m1", _ms(T0 + 120), {"energy_import_kwh": 5.0})
    assert ledger.consumed_kwh("A-1") == pytest.approx(2.0)


def test_account_update_keeps_money_and_reports_no_change(ledger: Ledger) -> None:
    same = Account("A-1", "gw-1", "m1", tariff=0.5, opening=999.0, created_at=T0 + 5)
    assert not ledger.upsert_account(same)  # opening / start are kept, so nothing changed
    assert ledger.upsert_account(Account("A-1", "gw-1", "m1", tariff=0.6, keep_power=True))
    acc = ledger.account("A-1")
    assert acc is not None and acc.opening == 100.0 and acc.keep_power and acc.tariff == 0.6


def test_restart_continues_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as first:
        first.upsert_account(Account("A-1", "gw-1", "m1", tariff=1.0, opening=10.0))
        first.record_sample("gw-1", "m1", _ms(T0), {"energy_import_kwh": 100.0})
        first.record_sample("gw-1", "m1", _ms(T0 + 60), {"energy_import_kwh": 103.0})
        first.apply_payment("P-1", "A-1", 5.0, T0)
    with Ledger(path) as second:
        assert second.balance("A-1") == pytest.approx(12.0)
        assert not second.apply_payment("P-1", "A-1", 5.0, T0)
        assert second.record_sample("gw-1", "m1", _ms(T0 + 30), {"energy_import_kwh": 101.0}) is None
        second.record_sample("gw-1", "m1", _ms(T0 + 120), {"energy_import_kwh": 104.0})
        assert second.balance("A-1") == pytest.approx(11.0)


def test_unknown_account_is_refused(ledger: Ledger) -> None:
    with pytest.raises(KeyError):
        ledger.apply_payment("P-1", "nobody", 1.0, T0)


def test_charged_registers_are_committed_by_flush_and_other_writers_are_seen(tmp_path: Path) -> None:
    """Readings are charged in one transaction per engine batch (a commit per reading cost ~0.5 ms);
    what another process commits (a payment imported from CSV) is seen at once despite the cache."""
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as engine_side:
        engine_side.upsert_account(Account("A-1", "gw-1", "m1", tariff=1.0, opening=10.0))
        engine_side.record_sample("gw-1", "m1", _ms(T0), {"energy_import_kwh": 100.0})
        engine_side.record_sample("gw-1", "m1", _ms(T0 + 60), {"energy_import_kwh": 103.0})
        assert engine_side.balance("A-1") == pytest.approx(7.0)
        reader = sqlite3.connect(path)
        assert reader.execute("SELECT consumed_cny FROM registers").fetchall() == []  # not yet committed
        engine_side.flush()
        assert reader.execute("SELECT consumed_cny FROM registers").fetchall() == [(3.0,)]
        reader.close()
        with Ledger(path) as importer:
            assert importer.apply_payment("P-1", "A-1", 5.0, T0)
            assert importer.upsert_account(Account("A-1", "gw-1", "m1", tariff=2.0))
        assert engine_side.balance("A-1") == pytest.approx(12.0)  # the cached payment sum was dropped
        engine_side.record_sample("gw-1", "m1", _ms(T0 + 120), {"energy_import_kwh": 104.0})
        assert engine_side.balance("A-1") == pytest.approx(10.0)  # the new tariff (2.0), not the cached one
    with Ledger(path) as after:  # close() committed the last charge
        assert after.balance("A-1") == pytest.approx(10.0)
