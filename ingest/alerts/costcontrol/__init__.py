"""Remote cost control (远程费控), one room: the prepaid account ledger (ledger.py), the billing input
that validates payments / tariff changes / accounts and writes them into it (billing.py), the rule set's
configuration (config.py) and the alert rules that read the ledger (rule.py).

Layer: ingest alerts. Inside: rule -> billing -> ledger, and config beside them (the import-linter
contracts in pyproject.toml hold that order). Must not: import the engine, the alert role or the ingest
service's config; the `gridedge ingest billing import` command line is ingest/billing_cli.py.
"""
