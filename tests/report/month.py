"""A known month (November 2026, China Standard Time) written as the ingest and the alert engine write
it, and the figures a report of that month must show, worked out by hand in the comments.

Promises (preset seed): urban area-u arrival 30 min / restoration 4 h; rural area-r 60 min / 6 h.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from ingest.lineproto import point

CST = timezone(timedelta(hours=8))
HOUR = 3600.0

TOPOLOGY = """
gateways: {gw-1: {site: north}}
areas:
  area-u: {region: urban}
  area-r: {region: rural}
devices:
  gw-1/m1: {area: area-u, phase: A, account: A-1}
  gw-1/m2: {area: area-u, phase: B, account: A-2}
  gw-1/m3: {area: area-r, phase: B, account: A-3}
  gw-1/hall-1: {hall: hall-main}
"""


def t(day: int, hh: int, mm: int = 0, ss: float = 0.0, month: int = 11) -> float:
    return datetime(2026, month, day, hh, mm, tzinfo=CST).timestamp() + ss


def _ms(ts: float) -> int:
    return round(ts * 1000)


def alert(
    rule: str, subject: str, state: str, at: float, started: float, duration: float | None = None
) -> str:
    fields: dict[str, Any] = {"state": state, "message": f"{rule} {subject}", "started_at": started}
    if duration is not None:
        fields["duration_s"] = duration
    return point("alert", {"rule": rule, "subject": subject, "severity": "major"}, fields, _ms(at))


def episode(rule: str, subject: str, start: float, end: float | None) -> list[str]:
    lines = [alert(rule, subject, "firing", start + 60, start)]
    if end is not None:
        lines.append(alert(rule, subject, "resolved", end + 30, start, end - start))
    return lines


def action(rule: str, subject: str, kind: str, at: float, **fields: str) -> str:
    return point(
        "alert_action",
        {"rule": rule, "subject": subject, "action": kind},
        {"by": "op-7", "work_state": "on_site", **fields},
        _ms(at),
    )


def outages() -> list[str]:
    lines = []
    # O1 urban: arrived after 20 min (met), restored after 2 h (met)
    lines += episode("area_outage", "area/area-u", t(5, 10), t(5, 12))
    lines.append(action("area_outage", "area/area-u", "arrived", t(5, 10, 20)))
    # O2 urban: arrived after 50 min (missed), restored after 5.5 h (missed)
    lines += episode("area_outage", "area/area-u", t(20, 9), t(20, 14, 30))
    lines.append(action("area_outage", "area/area-u", "arrived", t(20, 9, 50)))
    lines.append(action("area_outage", "area/area-u", "ack", t(20, 9, 5)))  # not an arrival
    lines.append(action("area_outage", "area/area-u", "arrived", t(20, 10)))  # the second crew: not first
    lines.append(action("area_outage", "area/area-x", "arrived", t(21, 10)))  # no such outage: noted
    # O3 rural phase outage: restored after 30 min, no crew: arrival not due, restoration met
    lines += episode("phase_outage", "area/area-r/phase-B", t(10, 8), t(10, 8, 30))
    # O4 rural: started on the 28th, still open when the report is made: both promises missed
    lines += episode("area_outage", "area/area-r", t(28, 23), None)
    # O5 started in October: not this month's
    lines += episode("area_outage", "area/area-u", t(31, 22, month=10), t(1, 1))
    return lines


def _ticket(
    day: int, hh: int, mm: int, ticket: int, business: int, wait: float, counter: int, staff: int, seq: int
) -> list[str]:
    issued = t(day, hh, mm) + ticket  # one point per ticket: same series and ms would overwrite
    name = {1: "payment", 2: "account change"}[business]
    tags = {"gw": "gw-1", "hall": "hall-main"}
    return [
        point(
            "hall_event",
            {**tags, "kind": "ticket_issued"},
            {"ticket": f"{ticket}.0", "business": float(business), "business_name": name, "seq": seq},
            _ms(issued),
        ),
        point(
            "hall_event",
            {**tags, "kind": "service_started", "counter": str(counter)},
            {"ticket": f"{ticket}.0", "wait_s": wait, "staff": float(staff), "seq": seq + 1},
            _ms(issued + wait),
        ),
        point(
            "hall_event",
            {**tags, "kind": "service_finished", "counter": str(counter)},
            {
                "ticket": f"{ticket}.0",
                "wait_s": wait,
                "service_s": 300.0,
                "staff": float(staff),
                "seq": seq + 2,
            },
            _ms(issued + wait + 300),
        ),
    ]


def _rating(at: float, counter: int, staff: int, score: int, label: str, seq: int) -> str:
    tags = {"gw": "gw-1", "hall": "hall-main", "counter": str(counter), "staff": str(staff)}
    return point("rating", tags, {"score": float(score), "level": label, "ticket": 1.0, "seq": seq}, _ms(at))


def hall() -> list[str]:
    lines: list[str] = []
    # 11-02 09:10 (month start), payment, waits 1-4 min: counter 1 / staff 1001 then counter 2 / 1002
    for i, wait in enumerate((60.0, 120.0, 180.0, 240.0)):
        lines += _ticket(2, 9, 10, i + 1, 1, wait, 1 if i < 2 else 2, 1001 if i < 2 else 1002, 10 * i)
    # 11-15 14:05 (mid-month), account change, waits 10 and 20 min at counter 1; ticket 3 abandoned
    for i, wait in enumerate((600.0, 1200.0)):
        lines += _ticket(15, 14, 5, i + 1, 2, wait, 1, 1001, 100 + 10 * i)
    lines.append(
        point(
            "hall_event",
            {"gw": "gw-1", "hall": "hall-main", "kind": "ticket_issued"},
            {"ticket": "3.0", "business": 2.0, "business_name": "account change", "seq": 150},
            _ms(t(15, 14, 5)),
        )
    )
    lines.append(
        point(
            "hall_event",
            {"gw": "gw-1", "hall": "hall-main", "kind": "ticket_abandoned", "counter": "1"},
            {"ticket": "3.0", "reason": "no_show", "seq": 151},
            _ms(t(15, 15)),
        )
    )
    # 11-29 10:30 (month end), payment, waits 0.5 / 1.5 / 2.5 min at counter 2 / staff 1002
    for i, wait in enumerate((30.0, 90.0, 150.0)):
        lines += _ticket(29, 10, 30, i + 1, 1, wait, 2, 1002, 200 + 10 * i)
    # ratings: counter 1 (1001) 2 of 3 satisfied; counter 2 (1002) 3 of 5 (one pad without labels: 4)
    lines += [
        _rating(t(2, 9, 30), 1, 1001, 1, "very satisfied", 300),
        _rating(t(2, 9, 40), 1, 1001, 2, "satisfied", 301),
        _rating(t(15, 14, 40), 1, 1001, 4, "dissatisfied", 302),
        _rating(t(2, 9, 50), 2, 1002, 1, "very satisfied", 303),
        _rating(t(2, 9, 55), 2, 1002, 1, "very satisfied", 304),
        _rating(t(29, 10, 40), 2, 1002, 1, "very satisfied", 305),
        _rating(t(29, 10, 50), 2, 1002, 3, "neutral", 306),
        _rating(t(29, 11), 2, 1002, 4, "", 307),
    ]
    # the counter-1 customer is called back after 80 min; the counter-2 one never (overdue)
    lines.append(
        action("dissatisfied_rating", "hall/hall-main/counter-1", "callback", t(15, 16), outcome="resolved")
    )
    lines += episode("rating_followup", "hall/hall-main/counter-2", t(30, 11), None)
    return lines


def costcontrol() -> list[str]:
    def relay(dev: str, account: str, state: str, at: float) -> str:
        tags = {"gw": "gw-1", "dev": dev, "kind": "relay_change", "account": account, "area": "area-u"}
        previous = "closed" if state == "open" else "open"
        return point("meter_event", tags, {"relay": state, "previous": previous, "seq": 1}, _ms(at))

    lines: list[str] = []
    # arrears 11-03 08:00, tripped 10:00, paid 11-04 09:00, closed 15:00: 6 h (met, promise 24 h)
    lines += episode("arrears", "account/A-1", t(3, 8), t(4, 9))
    lines += [relay("m1", "A-1", "open", t(3, 10)), relay("m1", "A-1", "closed", t(4, 15))]
    # arrears 11-12 08:00, tripped 12:00, paid 11-13 08:00, closed 11-14 20:00: 36 h (missed)
    lines += episode("arrears", "account/A-2", t(12, 8), t(13, 8))
    lines += [relay("m2", "A-2", "open", t(12, 12)), relay("m2", "A-2", "closed", t(14, 20))]
    # in arrears from the 25th, never tripped
    lines += episode("arrears", "account/A-3", t(25, 8), None)
    lines += episode("relay_misoperation", "gw-1/m3", t(7, 10), t(7, 10, 30))
    lines.append(
        point(
            "autocontrol",
            {"decision": "sent", "action": "trip", "account": "A-1"},
            {"id": "c-1", "gw": "gw-1", "dev": "m1"},
            _ms(t(3, 9, 59)),
        )
    )
    return lines


def reading() -> list[str]:
    lines: list[str] = []
    start = t(1, 0)
    for slot in range(30 * 96):  # every 15-min slot of November
        at = start + slot * 900 + 60
        lines.append(_reading("m1", at, 100 + slot * 0.1, 5.0))
        if slot < 15 * 96:  # m2 stops half-way: 1,440 of 2,880 slots
            lines.append(_reading("m2", at, 50 + slot * 0.1, -400.0 if slot == 100 else 2.0))
    lines.append(_reading("m1", start + 65, 100.0, 5.0))  # a second reading in slot 0: still one slot
    lines += [
        _reading("m9", start + i * 900 + 1, 1.0, 0.0, gw="gw-2") for i in range(10)
    ]  # not in the topology
    lines += episode("register_decrease", "gw-1/m2", t(8, 10), t(9, 10))
    lines += episode("clock_drift", "gw-1/m2", t(2, 1), t(2, 2))
    return lines


def _reading(dev: str, at: float, kwh: float, skew: float, gw: str = "gw-1") -> str:
    fields = {"energy_import_kwh": kwh, "meter_clock_skew_s": skew}
    return point("meter", {"gw": gw, "dev": dev, "protocol": "dlt645"}, fields, _ms(at))


def lines() -> str:
    return "\n".join(outages() + hall() + costcontrol() + reading()) + "\n"
