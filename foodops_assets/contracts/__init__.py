"""Data contracts (ODCS v3 files, ``resources/contracts/*.odcs.yaml``) and what is derived
from them: the Spark read schema, the DLQ rules, the pandera schema. Imports nothing of the
package."""

from .model import (
    CONTRACT_SUFFIX,
    CONTRACTS_DIR,
    PARSEABLE_RULE,
    Contract,
    ContractColumn,
    ContractError,
    Reference,
    Relationship,
    Rule,
    check_references,
    contract_files,
    contract_path,
    load_contract,
    parse_contract,
)

__all__ = [
    "CONTRACTS_DIR",
    "CONTRACT_SUFFIX",
    "PARSEABLE_RULE",
    "Contract",
    "ContractColumn",
    "ContractError",
    "Reference",
    "Relationship",
    "Rule",
    "check_references",
    "contract_files",
    "contract_path",
    "load_contract",
    "parse_contract",
]
