"""The hall queue state machine, pure: life cycles, recalls, transfers, suspend/call back, pauses,
ratings, day end, and a snapshot that restores exactly."""

from __future__ import annotations

import datetime as dt

from gateway.drivers.hall.queue import HallQueue, Out
from protocols.hall import Event, Evt, Level
from protocols.messages import EVENT_REQUIRED, EventKind

T0 = int(dt.datetime(2026, 11, 17, 9, 0).timestamp() * 1000)  # a Tuesday, 09:00 local


def queue(**kw: object) -> HallQueue:
    return HallQueue("hall-main", {1: (1057, ()), 2: (1058, (2,))}, businesses={1: "payment"}, **kw)  # type: ignore[arg-type]


def issue(q: HallQueue, ticket: int, business: int, at_s: float) -> list[Out]:
    return q.dispenser(Event(1, Evt.TICKET_ISSUED, business=business, ticket=ticket), T0 + int(at_s * 1000))


def key(q: HallQueue, counter: int, code: Evt, at_s: float, **fields: int) -> list[Out]:
    return q.keypad(counter, Event(1, code, **fields), T0 + int(at_s * 1000))  # type: ignore[arg-type]


def kinds(outs: list[Out]) -> list[str]:
    return [o.kind.value for o in outs]


def test_every_event_carries_the_contract_keys() -> None:
    q = queue()
    outs = issue(q, 1, 1, 0) + key(q, 1, Evt.CALL_NEXT, 60) + key(q, 1, Evt.FINISH, 300)
    outs += q.pad(1, Event(2, Evt.RATING, level=Level.DISSATISFIED, ticket=1), T0 + 310_000)
    for out in outs:
        missing = [k for k in EVENT_REQUIRED[out.kind] if k not in out.data]
        assert not missing, (out.kind, missing)


def test_a_served_and_rated_ticket() -> None:
    q = queue()
    assert kinds(issue(q, 7, 1, 0)) == ["ticket_issued"]
    called = key(q, 1, Evt.CALL_NEXT, 120)
    assert kinds(called) == ["ticket_called", "counter_state"]
    assert called[0].data.items() >= {"ticket": 7, "counter": 1, "staff": 1057}.items()
    assert called[1].data["state"] == "serving"
    assert q.display(1).ticket == 7 and q.display(1).waiting == 0
    done = key(q, 1, Evt.FINISH, 420)
    assert kinds(done) == ["service_started", "service_finished", "counter_state"]
    started, finished = done[0], done[1]
    assert started.ts_ms == T0 + 120_000 and started.data["wait_s"] == 120.0
    assert finished.data["wait_s"] == 120.0 and finished.data["service_s"] == 300.0
    assert [(p.what, p.ticket, p.staff) for p in q.take_pushes()] == [("start_eval", 7, 1057)]
    rating = q.pad(1, Event(3, Evt.RATING, level=Level.SATISFIED, ticket=7), T0 + 430_000)
    assert rating[0].kind is EventKind.RATING
    assert (
        rating[0].data.items()
        >= {"level": 2, "label": "satisfied", "counter": 1, "staff": 1057, "ticket": 7}.items()
    )
    assert q.stats.served == 1 and q.stats.rated == 1


def test_counter_businesses_recall_limit_and_no_show() -> None:
    q = queue(max_recall=2)
    issue(q, 1, 1, 0)
    issue(q, 2, 2, 10)
    assert q.waiting_for(1) == 2 and q.waiting_for(2) == 1
    key(q, 2, Evt.CALL_NEXT, 20)  # counter 2 serves business 2 only: skips ticket 1
    assert q.counters[2].ticket == 2
    for n in range(3):
        out = key(q, 2, Evt.RECALL, 30 + n)
        assert kinds(out) == (["ticket_recalled"] if n < 2 else [])
    gone = key(q, 2, Evt.GIVE_UP, 90)
    assert kinds(gone) == ["ticket_abandoned", "counter_state"]
    assert gone[0].data.items() >= {"reason": "no_show", "counter": 2, "recalls": 2}.items()
    assert key(q, 2, Evt.CALL_NEXT, 100) == []  # nobody for business 2: the counter stays idle
    assert q.stats.call_empty == 1


def test_transfer_requeues_at_the_back_with_the_new_business() -> None:
    q = queue()
    issue(q, 1, 1, 0)
    issue(q, 2, 1, 5)
    key(q, 1, Evt.CALL_NEXT, 10)
    out = key(q, 1, Evt.TRANSFER, 100, business=2)
    assert kinds(out) == ["service_started", "ticket_transferred", "counter_state"]
    assert out[1].data.items() >= {"business": 2, "from_business": 1, "service_s": 90.0}.items()
    assert q.order == [2, 1]
    key(q, 2, Evt.CALL_NEXT, 200)  # counter 2 takes business 2: the transferred ticket
    assert q.counters[2].ticket == 1
    finished = key(q, 2, Evt.FINISH, 260)
    assert finished[1].data["wait_s"] == 100.0  # since the transfer
    assert q.stats.transferred == 1 and q.stats.served == 1


def test_suspend_call_back_pause_and_resume() -> None:
    q = queue()
    issue(q, 5, 1, 0)
    key(q, 1, Evt.CALL_NEXT, 10)
    assert kinds(key(q, 1, Evt.SUSPEND, 40)) == ["service_started", "ticket_suspended", "counter_state"]
    assert kinds(key(q, 1, Evt.CALL_BACK, 50, ticket=99)) == []  # unknown ticket
    back = key(q, 1, Evt.CALL_BACK, 60, ticket=5)
    assert kinds(back) == ["ticket_called", "counter_state"] and back[0].data["call_back"] is True
    assert kinds(key(q, 1, Evt.PAUSE, 70)) == ["service_started", "service_finished", "counter_state"]
    assert q.counters[1].state == "paused"
    assert key(q, 1, Evt.RESUME, 80)[0].data["state"] == "idle"


def test_login_sets_staff_and_keypad_offline_is_reported() -> None:
    q = HallQueue("h", {3: (None, ())})
    issue(q, 1, 1, 0)
    assert key(q, 3, Evt.CALL_NEXT, 1)[-1].data.items() >= {"state": "offline", "reason": "no_staff"}.items()
    login = key(q, 3, Evt.LOGIN, 2, staff=1234)
    assert kinds(login) == ["staff_login", "counter_state"] and q.counters[3].staff == 1234
    assert q.keypad_online(3, False, T0)[0].data.items() >= {"state": "offline", "reason": "device"}.items()
    assert q.keypad_online(3, False, T0) == []
    assert q.keypad_online(3, True, T0)[0].data["state"] == "serving"


def test_day_end_abandons_unserved_tickets_once() -> None:
    q = queue(day_end="18:00")
    assert q.tick(T0) == []  # first tick only learns the day
    issue(q, 1, 1, 0)
    issue(q, 2, 1, 1)
    issue(q, 3, 1, 2)
    key(q, 1, Evt.CALL_NEXT, 3)
    key(q, 2, Evt.CALL_NEXT, 4)  # business 2 only: nothing
    evening = T0 + 9 * 3600 * 1000 + 60_000  # 18:01
    out = q.tick(evening)
    assert [(o.data["ticket"], o.data["reason"]) for o in out] == [(2, "day_end"), (3, "day_end")]
    assert q.tick(evening + 60_000) == [] and q.order == []
    issue(q, 4, 1, 24 * 3600)  # next morning
    assert q.tick(T0 + 24 * 3600 * 1000 + 5000) == []
    assert len(q.tick(T0 + 33 * 3600 * 1000 + 120_000)) == 1  # next evening: ticket 4


def test_snapshot_restores_the_same_queue() -> None:
    q = queue()
    issue(q, 1, 1, 0)
    issue(q, 2, 2, 1)
    key(q, 1, Evt.CALL_NEXT, 2)
    key(q, 1, Evt.SUSPEND, 3)
    q.tick(T0)
    again = queue()
    again.restore(q.snapshot())
    assert again.snapshot() == q.snapshot()
    assert kinds(key(again, 1, Evt.CALL_BACK, 10, ticket=1)) == ["ticket_called", "counter_state"]


def test_a_call_that_found_nobody_takes_the_next_ticket() -> None:
    """The dispenser is polled before the keypads: a ticket issued and called within one poll cycle
    reaches the gateway after the call, and still goes to that counter."""
    q = queue()
    assert key(q, 2, Evt.CALL_NEXT, 10) == []
    assert kinds(issue(q, 1, 1, 11)) == ["ticket_issued"]  # business 1: not for counter 2
    out = issue(q, 2, 2, 12)
    assert kinds(out) == ["ticket_issued", "ticket_called", "counter_state"]
    assert q.counters[2].ticket == 2 and q.order == [1]
    key(q, 2, Evt.FINISH, 100)
    assert key(q, 2, Evt.CALL_NEXT, 110) == []
    key(q, 2, Evt.PAUSE, 111)  # any other key cancels the waiting call
    issue(q, 3, 2, 112)
    assert q.order == [1, 3]
