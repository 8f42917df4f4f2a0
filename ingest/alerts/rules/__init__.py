"""Rule sets of the alert engine, one module each; each module exposes `RULESET: model.RuleSet`."""

from __future__ import annotations

import importlib
from typing import Final

from ..model import RuleSet

MODULES: Final = ("devices", "outage", "costcontrol", "reading", "hall")


def rulesets() -> list[RuleSet]:
    return [importlib.import_module(f"{__name__}.{name}").RULESET for name in MODULES]
