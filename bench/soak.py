"""Soak: the whole pipeline on loopback under random faults, then the accounting of the whole run.

    python bench/soak.py --duration SECONDS [--seed N] [--workdir DIR]

Sets everything up itself with the fault rig of tests/faults/harness.py (Mosquitto, influxd, the
simulators, the witness, the gateway and the ingest as real subprocesses), injects faults drawn at
random from the list below until the duration is spent, stops the gateway gracefully, prints the
table of faults injected (kind, count, recovery time) and the accounting, and ends with exactly one
line `faults=N produced=N stored=N lost=N duplicated=N`. Exit code 1 when anything was lost,
duplicated or dropped without being counted (see the harness's docstring for the definitions).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.workdir import run_dir
from tests.faults.harness import DLT_METERS, Rig, RigError


def fault_menu(rig: Rig, rng: random.Random) -> list[Callable[[], object]]:
    def clock_step() -> None:
        step = rng.choice((-1, 1)) * rng.uniform(1, 3600)
        rig.clock_jump(step, hold_s=rng.uniform(1, 4))
        rig.clock_jump(-step)

    return [
        lambda: rig.broker_outage(rng.uniform(1, 6)),
        lambda: rig.influx_outage(rng.uniform(1, 6)),
        lambda: rig.kill_gateway(rng.uniform(0, 3)),
        lambda: rig.kill_ingest(rng.uniform(0, 3)),
        lambda: rig.dead_meter(rng.choice(DLT_METERS), rng.uniform(4, 15)),
        lambda: rig.line_noise(rng.choice(("dlt", "mb")), rng.uniform(2, 8), p=rng.uniform(0.1, 0.4)),
        lambda: rig.unplug(rng.choice(("dlt", "mb")), rng.uniform(0.5, 5)),
        clock_step,
    ]


def soak(rig: Rig, duration: float, rng: random.Random) -> int:
    menu = fault_menu(rig, rng)
    deadline = time.monotonic() + duration
    failures = 0
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(0, 3))  # a random moment in the poll/publish cycle
        try:
            rng.choice(menu)()
        except RigError as exc:
            failures += 1
            print(f"soak: no recovery: {exc}", file=sys.stderr)
    return failures


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, required=True, help="seconds of faults")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--workdir",
        default=None,
        help="work here and keep everything (default: a temporary directory, removed after a clean run, "
        "only its logs kept after a failure)",
    )
    args = p.parse_args()
    if args.workdir:  # asked for: everything stays
        return run_soak(args, Path(args.workdir))
    with run_dir("gridedge-soak-") as run:  # removed after a clean run; its logs kept after a failure
        code = run_soak(args, run.path)
        if code:
            run.failed()
    return code


def run_soak(args: argparse.Namespace, workdir: Path) -> int:
    rng = random.Random(args.seed)
    print(f"soak: {args.duration:.0f} s, seed {args.seed}, work directory {workdir}", flush=True)
    with Rig(workdir, seed=args.seed) as rig:
        stuck = soak(rig, args.duration, rng)
        acc = rig.account(final=True, timeout=120)
        print(rig.fault_table())
        print(acc.summary())
        if stuck:
            print(f"soak: {stuck} fault(s) without recovery in {rig.recovery_timeout_s:.0f} s (see stderr)")
        print(acc.line(len(rig.faults)))
    return 0 if acc.ok else 1


if __name__ == "__main__":
    sys.exit(main())
