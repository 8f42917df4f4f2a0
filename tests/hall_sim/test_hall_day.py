"""A whole simulated hall day, driven through the devices' respond() by a minimal FIFO master (poll,
acknowledge by SEQ, START_EVAL after each FINISH), checked for a consistent ticket life cycle."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from firmware_sim.devices.hall import HallDevice, build_hall
from firmware_sim.devices.hall.model import HallParams, arrival_rate
from protocols.hall import (
    DeviceKind,
    Event,
    Evt,
    display_request,
    parse_frame,
    parse_poll_reply,
    poll_request,
    start_eval_request,
)


@dataclass
class Master:
    """What a gateway hall driver keeps: the FIFO queue and who is at each counter."""

    queue: list[tuple[int, float]] = field(default_factory=list)  # (ticket, issued at)
    issued: set[int] = field(default_factory=set)
    serving: dict[int, int] = field(default_factory=dict)  # counter -> ticket
    waits: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    levels: Counter[int] = field(default_factory=Counter)
    last_seq: dict[int, int] = field(default_factory=dict)

    def handle(self, dev: HallDevice, event: Event, now: float) -> None:
        if self.last_seq.get(dev.address) == event.seq:
            self.outcomes["duplicate"] += 1
            return
        self.last_seq[dev.address] = event.seq
        k, code = dev.counter, event.code
        self.outcomes[code.name.lower()] += 1
        if code == Evt.TICKET_ISSUED:
            assert event.ticket not in self.issued
            self.issued.add(event.ticket or 0)
            self.queue.append((event.ticket or 0, now))
        elif code == Evt.CALL_NEXT:
            ticket, issued_at = self.queue.pop(0)
            assert ticket in self.issued and now - issued_at >= 0
            self.waits.append(now - issued_at)
            self.serving[k] = ticket
            self.pending_display = (k, ticket)
        elif code in (Evt.RECALL, Evt.GIVE_UP, Evt.FINISH, Evt.TRANSFER):
            assert k in self.serving, f"{code.name} at counter {k} with no ticket called"
            ticket = self.serving[k] if code == Evt.RECALL else self.serving.pop(k)
            if code == Evt.TRANSFER:
                self.queue.append((ticket, now))
            if code == Evt.FINISH:
                self.pending_eval = (k, ticket)
        elif code in (Evt.RATING, Evt.NO_RATING):
            assert event.ticket in self.issued
            if event.level is not None:
                self.levels[int(event.level)] += 1

    pending_eval: tuple[int, int] | None = None
    pending_display: tuple[int, int] | None = None


def test_a_month_end_day_is_consistent() -> None:
    start = dt.datetime(2026, 11, 30, 7, 0).timestamp()  # the last day of the month: a peak day
    devices = build_hall(HallParams(counters=3, seed=4, arrivals_per_hour=25.0), start)
    pads = {d.counter: d for d in devices if d.kind == DeviceKind.RATING_PAD}
    master = Master()
    acks = {d.address: 0 for d in devices}
    now = start
    while now < start + 12 * 3600:
        now += 10
        for dev in devices:
            while True:
                reply = dev.respond(poll_request(dev.address, acks[dev.address]).encode(), now)
                assert reply is not None
                event = parse_poll_reply(parse_frame(reply.data))
                if event is None:
                    break
                acks[dev.address] = event.seq
                master.handle(dev, event, now)
                if master.pending_display is not None:
                    k, ticket = master.pending_display
                    master.pending_display = None
                    shown = dev.respond(display_request(dev.address, len(master.queue), ticket).encode(), now)
                    assert shown is not None and parse_frame(shown.data).func == 0x82
                    assert dev.model.counters[k - 1].customer.ticket == ticket  # type: ignore[union-attr]
                if master.pending_eval is not None:
                    k, ticket = master.pending_eval
                    master.pending_eval = None
                    ack = pads[k].respond(start_eval_request(pads[k].address, ticket, k, 1000).encode(), now)
                    assert ack is not None and parse_frame(ack.data).func == 0x81
    out = master.outcomes
    assert out["ticket_issued"] > 150 and out["duplicate"] == 0
    assert out["call_next"] == out["finish"] + out["give_up"] + out["transfer"]  # the day ended clean
    assert out["give_up"] > 0 and out["recall"] >= out["give_up"]  # abandoned customers
    assert out["finish"] > 100 and out["login"] == 3 and out["logout"] == 3
    assert out["rating"] + out["no_rating"] == out["finish"]
    assert out["rating"] > 0.7 * out["finish"] and sum(master.levels.values()) == out["rating"]
    assert master.levels[1] > master.levels[4] > 0
    assert min(master.waits) >= 0 and max(master.waits) > 600
    assert not master.queue and not master.serving


def test_arrival_profile_peaks_at_month_edges_and_midday() -> None:
    params = HallParams(counters=1, arrivals_per_hour=30.0)
    mid_month_morning = arrival_rate(params, dt.datetime(2026, 11, 16, 9, 0))
    assert mid_month_morning == 30.0
    assert arrival_rate(params, dt.datetime(2026, 11, 16, 12, 0)) == 45.0
    assert arrival_rate(params, dt.datetime(2026, 11, 2, 9, 0)) == 54.0
    assert arrival_rate(params, dt.datetime(2026, 2, 27, 9, 0)) == 54.0  # last 3 days of February
    assert arrival_rate(params, dt.datetime(2026, 11, 16, 20, 0)) == 0.0


def test_same_seed_same_day() -> None:
    start = dt.datetime(2026, 11, 16, 8, 0).timestamp()
    runs = []
    for _ in range(2):
        devices = build_hall(HallParams(counters=2, seed=9), start)
        devices[0].model.advance(start + 4 * 3600)
        runs.append([(r.at, r.address, r.code, r.fields) for r in devices[0].model.log])
    assert runs[0] == runs[1] and len(runs[0]) > 50
