"""Mutation fuzzer for every codec: DL/T 645, DL/T 698.45, Modbus (RTU, MBAP, register maps), hall frames,
MQTT payloads.

    .venv/bin/python bench/fuzz.py [--inputs 100000] [--codec dlt645|dlt698|modbus|hall|payload|all]
                                   [--seed N] [--crash-dir DIR]

Structure-aware: most inputs are valid frames from the codecs' own encoders (tests/fuzz/targets.py)
mutated by bit flips, interesting bytes, truncation, insertion, deletion, duplication and splicing with
another seed, then (half of the time) repaired by the codec's fixup (length fields, CS/CRC) so they get
past the link layer and exercise the message decoders; payloads also get JSON-level mutations (wrong
types, huge numbers, deep nesting, unknown fields). One input in ten is pure random bytes. Each input
goes to every decoder of the codec and, as garbage before a valid frame, to its stream splitters
(bounded buffer, resync). An exception other than the layer's own error is a crash: the input is kept
in the crash directory with its traceback. Exit status 1 on any crash. atheris is not needed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from protocols.errors import ProtocolError  # noqa: E402
from tests.fuzz.targets import TARGETS, Target  # noqa: E402

INTERESTING = (0x00, 0x01, 0x02, 0x16, 0x33, 0x68, 0x7F, 0x80, 0x90, 0xAA, 0xC0, 0xEE, 0xFE, 0xFF)
JSON_VALUES: tuple[Any, ...] = (
    None,
    True,
    -1,
    0,
    2**63,
    -(2**64),
    1e308,
    -0.0,
    "",
    "x" * 300,
    "\ud800",
    "é/+#",
    [],
    {},
    [1, "a", None],
    {"voltage_a_v": "230"},
)


@dataclass
class Tally:
    inputs: int = 0
    decoded: int = 0
    rejected: int = 0
    crashes: int = 0
    split_checks: int = 0
    seconds: float = 0.0
    kept: list[Path] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.inputs / self.seconds if self.seconds else 0.0


# ---- mutations ------------------------------------------------------------------------------------


def _bitflip(data: bytearray, rng: random.Random, seeds: list[bytes]) -> None:
    if data:
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)


def _interesting(data: bytearray, rng: random.Random, seeds: list[bytes]) -> None:
    if data:
        data[rng.randrange(len(data))] = rng.choice(INTERESTING)


def _truncate(data: bytearray, rng: random.Random, seeds: list[bytes]) -> None:
    if data:
        cut = rng.randrange(len(data))
        if rng.random() < 0.7:
            del data[cut:]
        else:
            del data[:cut]


def _insert(data: bytearray, rng: random.Random, seeds: list[bytes]) -> None:
    at = rng.randint(0, len(data))
    junk = bytes(
        rng.choice(INTERESTING) if rng.random() < 0.5 else rng.randrange(256)
        for _ in range(rng.randint(1, 8))
    )
    data[at:at] = junk


def _delete(data: bytearray, rng: random.Random, seeds: list[bytes]) -> None:
    if data:
        at = rng.randrange(len(data))
        del data[at : at + rng.randint(1, 8)]


def _duplicate(data: bytearray, rng: random.Random, seeds: list[bytes]) -> None:
    if data:
        at = rng.randrange(len(data))
        data[at:at] = data[at : at + rng.randint(1, 16)]


def _splice(data: bytearray, rng: random.Random, seeds: list[bytes]) -> None:
    other = rng.choice(seeds)
    at, start = rng.randint(0, len(data)), rng.randint(0, len(other))
    if rng.random() < 0.5:
        data[at:] = other[start:]
    else:
        data[at:at] = other[start : start + rng.randint(1, 32)]


MUTATIONS = (_bitflip, _interesting, _truncate, _insert, _delete, _duplicate, _splice)


def _mutate_json(raw: bytes, rng: random.Random) -> bytes:
    """Replace, delete or add one field somewhere in a JSON document, or nest it deeply."""
    doc = json.loads(raw)
    roll = rng.random()
    if roll < 0.05:
        depth = rng.choice((50, 500, 5000))
        return b"[" * depth + raw + b"]" * depth
    containers: list[Any] = [doc]
    stack: list[Any] = [doc]
    while stack:
        node = stack.pop()
        children = list(node.values()) if isinstance(node, dict) else node if isinstance(node, list) else []
        for child in children:
            if isinstance(child, dict | list):
                containers.append(child)
                stack.append(child)
    node = rng.choice(containers)
    value = rng.choice(JSON_VALUES)
    if isinstance(node, dict):
        keys = list(node)
        if keys and roll < 0.2:
            del node[rng.choice(keys)]
        elif keys and roll < 0.85:
            node[rng.choice(keys)] = value
        else:
            node[rng.choice(("extra", "values", "quality", "more", "voltage_a_v", "relay", "seq"))] = value
    elif isinstance(node, list):
        node.append(value)
    text = json.dumps(doc, allow_nan=True)
    if rng.random() < 0.1:
        text = text.replace("1e+308", rng.choice(("NaN", "Infinity", "1e999")))
    return text.encode("utf-8", "surrogatepass")


def generate(target: Target, rng: random.Random) -> bytes:
    seeds = list(target.seeds)
    if rng.random() < 0.1:
        return rng.randbytes(rng.randint(0, 300))
    raw = rng.choice(seeds)
    if target.name == "payload" and rng.random() < 0.6:
        raw = _mutate_json(raw, rng)
        if rng.random() < 0.7:
            return raw
    data = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        rng.choice(MUTATIONS)(data, rng, seeds)
    out = bytes(data)
    return target.fixup(out, rng) if rng.random() < 0.5 else out


# ---- the loop -------------------------------------------------------------------------------------


def _keep(crash_dir: Path, codec: str, raw: bytes, stage: str, exc: BaseException) -> Path:
    digest = hashlib.sha1(raw).hexdigest()[:16]
    path = crash_dir / f"{codec}-{stage}-{digest}.bin"
    crash_dir.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    text = "".join(traceback.format_exception(exc))
    path.with_suffix(".txt").write_text(f"input: {raw.hex(' ')}\nstage: {stage}\n\n{text}")
    return path


def fuzz(target: Target, inputs: int, seed: int, crash_dir: Path) -> Tally:
    rng = random.Random(f"{seed}:{target.name}")
    tally = Tally()
    started = time.perf_counter()
    for _ in range(inputs):
        raw = generate(target, rng)
        tally.inputs += 1
        try:
            target.decode(raw)
            tally.decoded += 1
        except ProtocolError:
            tally.rejected += 1
        except Exception as exc:
            tally.crashes += 1
            tally.kept.append(_keep(crash_dir, target.name, raw, "decode", exc))
        if target.split is None:
            continue
        cuts = [rng.randint(1, 64) for _ in range(rng.randint(0, 4))]
        try:
            target.split(raw, cuts, rng.randrange(1 << 16))
            tally.split_checks += 1
        except Exception as exc:
            tally.crashes += 1
            tally.kept.append(_keep(crash_dir, target.name, raw, f"split-{'-'.join(map(str, cuts))}", exc))
    tally.seconds = time.perf_counter() - started
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--inputs", type=int, default=100_000, help="inputs per codec")
    parser.add_argument("--codec", choices=[*TARGETS, "all"], default="all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--crash-dir", type=Path, default=Path(tempfile.gettempdir()) / "gridedge-fuzz-crashes"
    )
    args = parser.parse_args()
    names = list(TARGETS) if args.codec == "all" else [args.codec]
    results = {name: fuzz(TARGETS[name], args.inputs, args.seed, args.crash_dir) for name in names}
    header = ("codec", "inputs", "decoded", "rejected", "split ok", "crashes", "rate/s")
    print(f"{header[0]:<8} " + " ".join(f"{h:>8}" for h in header[1:]))
    for name, t in results.items():
        print(
            f"{name:<8} {t.inputs:>8} {t.decoded:>8} {t.rejected:>8} {t.split_checks:>8} {t.crashes:>8} "
            f"{t.rate:>8.0f}"
        )
    for name, t in results.items():
        for path in t.kept[:10]:
            print(f"crash kept: {path}")
        print(
            f"codec={name} inputs={t.inputs} decoded={t.decoded} rejected={t.rejected} "
            f"crashes={t.crashes} rate={t.rate:.0f}/s"
        )
    return 1 if any(t.crashes for t in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
