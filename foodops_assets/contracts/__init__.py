"""Data contracts (``resources/contracts/*.yaml``) and what is derived from them: the Spark
read schema, the DLQ rules, the pandera schema. Imports nothing of the package."""

from .model import (
    CONTRACTS_DIR,
    PARSEABLE_RULE,
    Contract,
    ContractColumn,
    ContractError,
    Reference,
    Rule,
    check_references,
    load_contract,
    parse_contract,
)

__all__ = [
    "CONTRACTS_DIR",
    "PARSEABLE_RULE",
    "Contract",
    "ContractColumn",
    "ContractError",
    "Reference",
    "Rule",
    "check_references",
    "load_contract",
    "parse_contract",
]
