"""Rule sets of the alert engine, one module each; each module exposes `RULESET: model.RuleSet`."""

from __future__ import annotations

import importlib
from typing import Final

from ..model import RuleSet

# relative to this package; cost control has its own package beside it (ledger, billing, rule)
MODULES: Final = (".devices", ".outage", "..costcontrol.rule", ".reading", ".hall", ".followup")


def rulesets() -> list[RuleSet]:
    return [importlib.import_module(name, __name__).RULESET for name in MODULES]
