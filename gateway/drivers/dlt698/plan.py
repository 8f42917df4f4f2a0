"""What a DL/T 698.45 poll reads: the configured objects as OADs, the canonical names each one
carries (to mark them when it fails), and the wire size of a request and its reply (airtime budget).

Layer: gateway driver helper, pure (no I/O). Must not: touch the bus.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from protocols.dlt698 import Entry, Kind, Oad
from protocols.dlt698 import lookup as catalogue_entry
from protocols.vocabulary import CANONICAL_NAMES

from .config import Dlt698Device, object_oad

# 68 L L C AF SA CA HCS HCS ... FCS FCS 16 without the SA: 11 bytes
FRAME_OVERHEAD: Final = 11
REPLY_PREAMBLE: Final = 4  # meters send FE FE FE FE before a reply too
UNKNOWN_DATA: Final = 16  # an object outside the catalogue: a guess of its encoded size
_ELEMENT: Final[dict[Kind, int]] = {
    Kind.NUMBER: 5,  # double-long(-unsigned); long-unsigned values are smaller (never underestimated)
    Kind.INT: 5,
    Kind.FIRST_COUNT: 12,
    Kind.RELAY: 3,  # bit-string(8): tag, bit count, one byte
    Kind.STATUS: 4,  # bit-string(16)
    Kind.FLAG: 2,
    Kind.TIME: 8,  # date_time_s
    Kind.HEX: 8,  # octet-string of a 6-byte address
}


def resolve(config: Dlt698Device) -> list[Oad]:
    """The configured objects, in order, without repeats (two names of one element read it once);
    a secured object is read only secured."""
    secured = set(resolve_secured(config))
    return [oad for oad in dict.fromkeys(object_oad(key) for key in config.objects) if oad not in secured]


def resolve_secured(config: Dlt698Device) -> list[Oad]:
    return list(dict.fromkeys(object_oad(key) for key in config.secured_objects))


def secured_request_apdu() -> int:
    # 10 00 len (05 01 PIID OAD TimeTag) 01 len RN(16)
    return 3 + 8 + 2 + 16


def secured_reply_apdu(oad: Oad) -> int:
    # 90 00 len (85 01 PIID OAD 01 Data FollowReport TimeTag) 01 00 len MAC(4)
    return 3 + (3 + 4 + 1 + data_size(oad) + 2) + 3 + 4


def names(oad: Oad) -> list[str]:
    """Canonical names `oad` carries: what its failure marks `error` in the sample's quality."""
    entry = catalogue_entry(oad)
    if entry is None:
        return []
    chosen = entry.names if not entry.array or not oad.index else entry.names[oad.index - 1 : oad.index]
    return [n for n in chosen if n is not None and n in CANONICAL_NAMES]


def data_size(oad: Oad) -> int:
    """Encoded size of the Data a meter answers for `oad` (an upper estimate for the catalogue)."""
    entry = catalogue_entry(oad)
    if entry is None:
        return UNKNOWN_DATA
    element = 9 if entry.kind == Kind.NUMBER and entry.attribute == 4 else _ELEMENT[entry.kind]
    if _is_structure(entry) and not oad.index:
        return 2 + element * len(entry.names)
    return element


def _is_structure(entry: Entry) -> bool:
    return entry.array and len(entry.names) > 1


def frame_size(sa_digits: int, apdu: int, preamble: int) -> int:
    return preamble + FRAME_OVERHEAD + sa_digits // 2 + apdu


def list_request_apdu(oads: Sequence[Oad]) -> int:
    # 05 02 PIID n OAD... TimeTag; a single object is GET-Normal: 05 01 PIID OAD TimeTag
    return 4 + 4 * len(oads) + 1 if len(oads) > 1 else 3 + 4 + 1


def list_reply_apdu(oads: Sequence[Oad]) -> int:
    # 85 02 PIID-ACD n (OAD 01 Data)... FollowReport TimeTag
    body = sum(4 + 1 + data_size(oad) for oad in oads)
    return (4 if len(oads) > 1 else 3) + body + 2


def chunks(oads: Sequence[Oad], size: int) -> list[list[Oad]]:
    return [list(oads[i : i + size]) for i in range(0, len(oads), size)]
