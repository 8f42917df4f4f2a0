"""The physics and wallet of a simulated cost-control (prepaid) meter, in canonical values.

Layer: simulator device model. Pure logic driven by `advance(now)`; knows nothing of registers or
frames (firmware_sim/devices/modbus.py maps these values onto a register map). Must not: do I/O,
sleep, or read the wall clock.

Behaviour (see protocols/modbus/maps/gridedge-prepaid.yaml):
- A seeded load profile (daily shape in China Standard Time x per-minute noise) drives power;
  energy integrates it into the tariff register of the hour (尖峰平谷 time-of-use schedule).
- Local cost control debits energy x price from the wallet and trips the relay itself when the
  overdraft reaches its limit (never while keep-power is on); remote cost control leaves the
  balance to the master station (only purchases change it).
- The relay's actual state follows the commanded state after RELAY_SETTLE_S; an open relay zeroes
  current, power and energy accumulation.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Final, Literal

from protocols.modbus import ExceptionCode, Value

CostControl = Literal["local", "remote"]

RELAY_SETTLE_S: Final = 2.0
CST_OFFSET_S: Final = 8 * 3600  # China Standard Time, UTC+8, no daylight saving
NOMINAL_V: Final = 220.0
# fraction of the meter's peak load by local hour: night base, morning rise, evening peak
LOAD_SHAPE: Final = (
    *(0.35, 0.30, 0.30, 0.30, 0.30, 0.35, 0.50, 0.80, 0.70, 0.60, 0.60, 0.70),
    *(0.70, 0.60, 0.55, 0.55, 0.60, 0.80, 1.00, 1.00, 0.95, 0.85, 0.65, 0.45),
)
# time-of-use tariff by local hour: 1 sharp, 2 peak, 3 flat, 4 valley
TARIFF_OF_HOUR: Final = (4, 4, 4, 4, 4, 4, 4, 3, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 2, 1, 1, 2, 2, 4)


class Refused(Exception):
    """The meter refuses a write (keep-power, hoarding limit, bad amount): reply with `code`."""

    def __init__(self, code: ExceptionCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code


@dataclass
class Wallet:
    amount: float  # remaining amount minus overdraft used: negative = in overdraft
    price: float = 0.5283  # CNY/kWh
    alarm1: float = 20.0
    alarm2: float = 10.0
    overdraft_limit: float = 10.0
    hoarding_limit: float = 5000.0
    purchase_count: int = 0
    purchase_last: float = 0.0
    purchase_total: float = 0.0


class PrepaidMeterPhysics:
    def __init__(self, seed: int, start_time: float, cost_control: CostControl = "local") -> None:
        rng = random.Random(f"gridedge-modbus-meter:{seed}")
        self.seed = seed
        self.cost_control = cost_control
        self.peak_kw = rng.uniform(2.0, 9.0)
        self.split = _normalised([rng.uniform(0.6, 1.4) for _ in range(3)])
        self.volt_offset = [rng.uniform(-4.0, 4.0) for _ in range(3)]
        self.pf = rng.uniform(0.86, 0.98)
        self.clock_skew_s = rng.uniform(-30.0, 30.0)
        self.relay_stuck = False  # fault: a welded / jammed relay contact
        self.temp_c = rng.uniform(18.0, 32.0)
        self.power_down_count = rng.randrange(0, 40)
        self.energy = [round(rng.uniform(200.0, 5000.0), 2) for _ in range(4)]  # t1..t4, kWh
        self.wallet = Wallet(amount=round(rng.uniform(30.0, 300.0), 2), purchase_count=rng.randrange(1, 60))
        self.wallet.purchase_total = round(self.wallet.purchase_count * 100.0, 2)
        self.wallet.purchase_last = 100.0
        # a quartz clock runs a little fast or slow: the skew grows until a time sync corrects it
        self.drift_s_per_day = rng.uniform(-3.0, 3.0)
        self.commanded_closed = True
        self.actual_closed = True
        self.keep_power = False
        self._command_at = start_time
        self._last = start_time
        self._noise_minute = -1
        self._noise = 0.0
        self.extra: dict[str, Value] = {}  # writable points of other maps: stored and read back

    # ---- time ------------------------------------------------------------------------------------

    def advance(self, now: float) -> None:
        dt = now - self._last
        if dt <= 0:
            return
        self._last = now
        self.clock_skew_s += self.drift_s_per_day * dt / 86400.0
        self._settle_relay(now)
        kwh = self.power_kw(now) * dt / 3600.0
        self.energy[TARIFF_OF_HOUR[_local_hour(now)] - 1] += kwh
        if self.cost_control == "local":
            self.wallet.amount -= kwh * self.wallet.price
            if (
                self.wallet.amount <= -self.wallet.overdraft_limit
                and self.commanded_closed
                and not self.keep_power
            ):
                self._command(False, now)  # the meter trips itself: arrears beyond the overdraft
        self._settle_relay(now)

    def _settle_relay(self, now: float) -> None:
        if self.relay_stuck:  # misoperation: the contact does not follow the command
            return
        if self.actual_closed != self.commanded_closed and now - self._command_at >= RELAY_SETTLE_S:
            self.actual_closed = self.commanded_closed

    def _command(self, closed: bool, now: float) -> None:
        if closed != self.commanded_closed:
            self.commanded_closed = closed
            self._command_at = now

    def power_kw(self, now: float) -> float:
        if not self.actual_closed:
            return 0.0
        minute = int(now // 60)
        if minute != self._noise_minute:
            self._noise_minute = minute
            self._noise = random.Random(f"{self.seed}:{minute}").uniform(-0.25, 0.25)
        return self.peak_kw * LOAD_SHAPE[_local_hour(now)] * (1.0 + self._noise)

    # ---- values ----------------------------------------------------------------------------------

    def values(self, now: float) -> dict[str, Value]:
        minute = int(now // 60)
        jitter = random.Random(f"v:{self.seed}:{minute}")
        volts = [NOMINAL_V + off + jitter.uniform(-1.5, 1.5) for off in self.volt_offset]
        power = self.power_kw(now)
        phase_kw = [power * share for share in self.split]
        amps = [kw * 1000.0 / (v * self.pf) for kw, v in zip(phase_kw, volts, strict=True)]
        out: dict[str, Value] = {
            **{f"voltage_{p}_v": round(v, 1) for p, v in zip("abc", volts, strict=True)},
            **{f"current_{p}_a": round(a, 3) for p, a in zip("abc", amps, strict=True)},
            **{f"power_active_{p}_kw": round(kw, 4) for p, kw in zip("abc", phase_kw, strict=True)},
            "power_active_kw": round(power, 4),
            "power_reactive_kvar": round(power * math.tan(math.acos(self.pf)), 4),
            "power_apparent_kva": round(power / self.pf, 4),
            "power_factor": round(self.pf, 3),
            "frequency_hz": round(50.0 + jitter.uniform(-0.05, 0.05), 2),
            "temperature_c": round(self.temp_c + 0.3 * power, 1),
            "energy_import_kwh": round(sum(self.energy), 2),
            **{f"energy_import_t{t}_kwh": round(e, 2) for t, e in enumerate(self.energy, start=1)},
            "power_down_count": self.power_down_count,
            "meter_time_s": float(int(now + self.clock_skew_s)),
        }
        out.update(self._wallet_values())
        out.update(self._state_values())
        out.update(self.extra)
        return out

    def _wallet_values(self) -> dict[str, Value]:
        w = self.wallet
        return {
            "balance_cny": round(max(w.amount, 0.0), 2),
            "overdraft_cny": round(max(-w.amount, 0.0), 2),
            "price_cny_per_kwh": w.price,
            "alarm1_cny": w.alarm1,
            "alarm2_cny": w.alarm2,
            "overdraft_limit_cny": w.overdraft_limit,
            "hoarding_limit_cny": w.hoarding_limit,
            "purchase_count": w.purchase_count,
            "purchase_last_cny": w.purchase_last,
            "purchase_total_cny": round(w.purchase_total, 2),
        }

    def _state_values(self) -> dict[str, Value]:
        alarm = self.wallet.amount < self.wallet.alarm1
        # DL/T 645-2007 status word 3: bit 4 relay open, bit 6 open commanded, bit 7 pre-trip alarm,
        # bits 8-9 = 10b fee-type prepaid meter, bit 12 keep-power (per docs/domain.md)
        word = 0x0200 | (not self.actual_closed) << 4 | (not self.commanded_closed) << 6 | alarm << 7
        return {
            "relay": "closed" if self.actual_closed else "open",
            "relay_commanded": "closed" if self.commanded_closed else "open",
            "keep_power": self.keep_power,
            "pre_trip_alarm": alarm,
            "status_word_3": word | self.keep_power << 12,
        }

    # ---- writes ----------------------------------------------------------------------------------

    def write(self, name: str, value: Value, now: float) -> None:
        """Apply a write of a canonical value; raise Refused when the meter would refuse it."""
        self.advance(now)
        w = self.wallet
        if name == "relay_commanded":
            self._write_relay(value == "closed", now)
        elif name == "keep_power":
            self.keep_power = bool(value)
        elif name == "purchase_last_cny":
            self._purchase(float(value))
        elif name in _WALLET_SETTINGS:
            setattr(w, _WALLET_SETTINGS[name], float(value))
        else:
            self.extra[name] = value

    def _write_relay(self, closed: bool, now: float) -> None:
        if not closed and self.keep_power:
            raise Refused(ExceptionCode.SERVER_DEVICE_FAILURE, "keep-power is on: trip refused")
        in_arrears = self.wallet.amount <= -self.wallet.overdraft_limit
        if closed and self.cost_control == "local" and in_arrears and not self.keep_power:
            raise Refused(ExceptionCode.SERVER_DEVICE_FAILURE, "in arrears: close refused until paid")
        self._command(closed, now)

    def _purchase(self, amount: float) -> None:
        w = self.wallet
        if amount <= 0:
            raise Refused(ExceptionCode.ILLEGAL_DATA_VALUE, f"purchase of {amount} CNY")
        if w.amount + amount > w.hoarding_limit:
            raise Refused(ExceptionCode.ILLEGAL_DATA_VALUE, f"balance would exceed {w.hoarding_limit} CNY")
        w.amount += amount
        w.purchase_count = (w.purchase_count + 1) % 10000  # a BCD16 counter rolls over at 9999
        w.purchase_last = amount
        w.purchase_total += amount


_WALLET_SETTINGS: Final = {
    "price_cny_per_kwh": "price",
    "alarm1_cny": "alarm1",
    "alarm2_cny": "alarm2",
    "overdraft_limit_cny": "overdraft_limit",
    "hoarding_limit_cny": "hoarding_limit",
}


def _local_hour(now: float) -> int:
    return int((now + CST_OFFSET_S) // 3600) % 24


def _normalised(weights: list[float]) -> list[float]:
    total = sum(weights)
    return [w / total for w in weights]
