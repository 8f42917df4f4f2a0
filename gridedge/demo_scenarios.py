"""The scripted scenarios of `gridedge demo` (examples/demo/scenarios.yaml): loading and running them.

A scenario is a list of steps run in order on a thread of its own: a simulator control line, a signed
command, a billing message, a broker restart, a pause, or a wait for an alert state in InfluxDB. The
live view starts one per key press; `--headless` starts all of them on a timeline and then checks that
each raised and resolved the alerts it `expect`s. Everything a step touches is a real part of the
pipeline: the simulators' stdin control channel, the broker, the gateway's command topic, the alert
engine's `alert` measurement.

Composition root (gridedge): may use the service packages' contracts, never their internals.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import msgspec
import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from protocols import topics
from protocols.operations import AlertAction
from protocols.signing import new_command

from .services import InfluxDB, Mosquitto, ServiceError

STEP_KINDS: Final = ("sim", "command", "billing", "alert", "broker", "sleep", "wait")
Status = Literal["idle", "running", "done", "failed"]


class ScenarioError(ValueError):
    """A scenarios file that cannot be run; the message names the scenario and the step."""


@dataclass(frozen=True)
class Scenario:
    name: str
    key: str
    title: str
    expect: tuple[str, ...]
    headless_at: float | None
    steps: tuple[dict[str, Any], ...]


def load_scenarios(path: Path) -> dict[str, Scenario]:
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    out: dict[str, Scenario] = {}
    keys: dict[str, str] = {}
    for name, spec in (doc or {}).get("scenarios", {}).items():
        where = f"{path}: scenarios.{name}"
        if not isinstance(spec, dict) or not isinstance(spec.get("steps"), list) or not spec["steps"]:
            raise ScenarioError(f"{where}: needs a non-empty list of steps")
        key = str(spec.get("key", ""))
        if len(key) != 1 or key in keys or key == "q":
            raise ScenarioError(f"{where}.key: one character, not q, not used by {keys.get(key, 'another')}")
        keys[key] = name
        for i, step in enumerate(spec["steps"]):
            kinds = [k for k in STEP_KINDS if isinstance(step, dict) and k in step]
            if len(kinds) != 1:
                raise ScenarioError(f"{where}.steps[{i}]: exactly one of {', '.join(STEP_KINDS)}")
            if kinds[0] == "wait" and not {"rule", "subject", "state"} <= set(step["wait"]):
                raise ScenarioError(f"{where}.steps[{i}].wait: needs rule, subject and state")
        at = spec.get("headless_at")
        out[name] = Scenario(
            name=name,
            key=key,
            title=str(spec.get("title", name)),
            expect=tuple(spec.get("expect", [])),
            headless_at=None if at is None else float(at),
            steps=tuple(spec["steps"]),
        )
    if not out:
        raise ScenarioError(f"{path}: no scenarios")
    return out


@dataclass
class Progress:
    """What one run of a scenario did: shown in the live view and the summary."""

    scenario: str
    status: Status = "idle"
    step: int = 0
    note: str = ""
    started: float | None = None
    ended: float | None = None
    log: list[str] = field(default_factory=list)

    def record(self, text: str) -> None:
        self.note = text
        self.log.append(f"{time.strftime('%H:%M:%S')} {text}")


class SimControl:
    """The simulators' stdin control channel; their stdout (answers, status lines) goes to a log."""

    def __init__(self, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self._proc = proc
        self._lock = threading.Lock()
        self._answers: queue.Queue[str] = queue.Queue()
        self._log = log_path.open("a")
        self._reader = threading.Thread(target=self._drain, name="demo:sim-stdout", daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self._proc.stdout is not None
        for raw in self._proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            self._log.write(line + "\n")
            self._log.flush()
            if line.startswith(("ok ", "error ")):
                self._answers.put(line)

    def send(self, line: str, timeout: float = 5.0) -> str:
        """Send one control line; return the simulator's answer (`ok ...` or `error ...`)."""
        assert self._proc.stdin is not None
        with self._lock:
            self._proc.stdin.write(line.encode() + b"\n")
            self._proc.stdin.flush()
            try:
                return self._answers.get(timeout=timeout)
            except queue.Empty:
                return f"error no answer from the simulators to {line!r}"


class Publisher:
    """One paho client for the demo's commands and billing messages; records command results."""

    def __init__(self, port: int, gw: str, key: bytes) -> None:
        self.gw = gw
        self._key = key
        self.results: dict[str, dict[str, Any]] = {}
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"gridedge-demo-{uuid.uuid4().hex[:6]}"
        )
        self._client.on_message = self._on_message
        self._client.on_connect = lambda c, *a: c.subscribe(topics.cmd_result_topic(gw, "+"), qos=1)
        self._client.reconnect_delay_set(1, 2)
        self._client.connect_async("127.0.0.1", port)
        self._client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            result = json.loads(msg.payload)
        except ValueError:
            return
        if isinstance(result, dict) and "id" in result:
            self.results[str(result["id"])] = result

    def command(self, dev: str, action: str, params: dict[str, Any] | None = None) -> str:
        now_ms = int(time.time() * 1000)
        command = new_command(
            self.gw, dev, action, params or {}, key=self._key, now_ms=now_ms, ttl_ms=120_000
        )
        self._client.publish(topics.cmd_topic(self.gw, dev), json.dumps(command), qos=1)
        return str(command["id"])

    def billing(self, account: str, kind: str, record: dict[str, Any]) -> None:
        topic = f"{topics.PREFIX}/billing/{account}/{kind}"
        self._client.publish(topic, json.dumps(record), qos=1)

    def alert_action(self, verb: str, fields: dict[str, Any]) -> None:
        """An operator's action on an alert (as `gridedge alerts VERB` sends it), checked against the
        contract before it goes."""
        body = msgspec.json.encode(msgspec.convert(fields, AlertAction))
        self._client.publish(topics.action_topic(verb), body, qos=1)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def alert_rows(influx: InfluxDB, rule: str, since_ms: int) -> list[tuple[int, str, str]]:
    """(time ms, subject, state) of every `alert` point of `rule` since `since_ms`, oldest first."""
    series = influx.query(
        f'SELECT "state", "subject" FROM "alert" WHERE "rule" = \'{rule}\' AND time >= {since_ms}ms'
    )
    rows: list[tuple[int, str, str]] = []
    for s in series:
        for t, state, subject in s.get("values", []):  # type: ignore[attr-defined]
            rows.append((int(t), str(subject), str(state)))
    return sorted(rows)


def reached(rows: list[tuple[int, str, str]], subject: str, state: str) -> bool:
    """`firing`: an alert whose subject contains `subject` fired; `resolved`: one that fired has since
    resolved (its latest point is `resolved`)."""
    fired = {s for _, s, st in rows if subject in s and st == "firing"}
    if state == "firing":
        return bool(fired)
    last = {s: st for _, s, st in rows if s in fired}
    return any(st == "resolved" for st in last.values())


@dataclass
class Runner:
    """Runs scenarios on threads against the live pipeline."""

    sim: SimControl
    publisher: Publisher
    broker: Mosquitto
    influx: InfluxDB
    since_ms: int
    stopping: threading.Event = field(default_factory=threading.Event)
    progress: dict[str, Progress] = field(default_factory=dict)
    found: dict[str, str] = field(default_factory=dict)  # rule -> the subject its last wait matched
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self, scenario: Scenario, on_done: Callable[[Progress], None] | None = None) -> bool:
        current = self.progress.get(scenario.name)
        if current is not None and current.status == "running":
            return False
        p = self.progress[scenario.name] = Progress(scenario.name, "running", started=time.time())
        thread = threading.Thread(
            target=self._run, args=(scenario, p, on_done), name=f"demo:scenario:{scenario.name}", daemon=True
        )
        self._threads.append(thread)
        thread.start()
        return True

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self, scenario: Scenario, p: Progress, on_done: Callable[[Progress], None] | None) -> None:
        try:
            for i, step in enumerate(scenario.steps):
                if self.stopping.is_set():
                    raise ScenarioError("demo stopping")
                p.step = i
                self._step(step, p)
            p.status = "done"
        except (ScenarioError, ServiceError, OSError) as exc:
            p.status = "failed"
            p.record(f"failed at step {p.step + 1}: {exc}")
        finally:
            p.ended = time.time()
            if on_done is not None:
                on_done(p)

    def _step(self, step: dict[str, Any], p: Progress) -> None:
        if "sim" in step:
            answer = self.sim.send(str(step["sim"]))
            p.record(answer)
            if not answer.startswith("ok"):
                raise ScenarioError(answer)
        elif "command" in step:
            c = step["command"]
            cid = self.publisher.command(str(c["dev"]), str(c["action"]), c.get("params"))
            p.record(f"signed {c['action']} sent to {c['dev']} (id {cid})")
        elif "billing" in step:
            record = dict(step["billing"])
            account, kind = str(record.pop("account")), str(record.pop("kind"))
            if kind == "payment":  # a payment id is applied once: make each run's payment new
                record["id"] = f"{record.get('id', 'demo')}-{uuid.uuid4().hex[:6]}"
            self.publisher.billing(account, kind, record)
            p.record(f"billing {kind} for {account}")
        elif "alert" in step:
            fields = {"by": "demo-operator", **step["alert"]}
            verb = str(fields.pop("verb"))
            if fields.get("subject") == "@found":  # the alert the last wait of its rule saw
                fields["subject"] = self.found.get(str(fields["rule"]), "")
            self.publisher.alert_action(verb, fields)
            p.record(f"operator: {verb} {fields['rule']} {fields['subject']}")
        elif "broker" in step:
            down = float(step.get("down_s", 5))
            p.record(f"broker stopped for {down:g} s")
            self.broker.stop()
            self.stopping.wait(down)
            self.broker.start()
            p.record("broker back")
        elif "sleep" in step:
            self.stopping.wait(float(step["sleep"]))
        else:
            self._wait(step["wait"], p)

    def _wait(self, w: dict[str, Any], p: Progress) -> None:
        rule, subject, state = str(w["rule"]), str(w["subject"]), str(w["state"])
        p.record(f"waiting for {rule} {subject} {state}")
        deadline = time.monotonic() + float(w.get("timeout", 60))
        while not self.stopping.is_set():
            try:
                rows = alert_rows(self.influx, rule, self.since_ms)
                if reached(rows, subject, state):
                    p.record(f"{rule} {subject} {state}")
                    self.found[rule] = next(s for _, s, _st in rows if subject in s)
                    return
            except ServiceError:
                pass  # InfluxDB busy for a moment: ask again
            if time.monotonic() > deadline:
                raise ScenarioError(f"{rule} for {subject} not {state} within {w.get('timeout', 60)} s")
            self.stopping.wait(1.0)
