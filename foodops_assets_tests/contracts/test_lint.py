"""The contract lint CI runs: every contract against the ODCS JSON schema, and against our
cross-contract rules (relationships point to primary keys of the same type).

The JSON schema is the one the ``open-data-contract-standard`` package ships (the same
release as the model the loader parses with); ``jsonschema`` validates it (draft 2019-09).
"""

import copy
import json
from importlib import resources

import jsonschema
import pytest
import yaml

from foodops_assets.contracts import (
    CONTRACTS_DIR,
    ContractError,
    check_references,
    contract_files,
    load_contract,
)

SOURCES = ["deliveries", "dishes", "orders", "restaurants", "reviews"]


@pytest.fixture(scope="module")
def odcs_validator() -> jsonschema.Draft201909Validator:
    text = resources.files("open_data_contract_standard").joinpath("schema.json").read_text()
    schema = json.loads(text)
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def _problems(validator, doc) -> list[str]:
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
        for e in validator.iter_errors(doc)
    ]


@pytest.mark.parametrize("name", SOURCES)
def test_every_contract_is_valid_odcs(odcs_validator, name):
    path = contract_files()[name]
    assert _problems(odcs_validator, yaml.safe_load(path.read_text())) == []


def test_every_contract_file_is_linted():
    assert sorted(contract_files()) == SOURCES
    assert sorted(contract_files(CONTRACTS_DIR)) == sorted(
        p.name.removesuffix(".odcs.yaml") for p in CONTRACTS_DIR.glob("*.yaml")
    )


def test_the_contracts_agree_with_each_other():
    contracts = {name: load_contract(name) for name in contract_files()}
    check_references(contracts)  # raises, naming the file, when they do not
    rels = {(c.name, r.column, r.source) for c in contracts.values() for r in c.relationships}
    assert rels == {
        ("orders", "restaurant_id", "restaurants"),
        ("orders", "dish_id", "dishes"),
        ("deliveries", "order_id", "orders"),
        ("reviews", "order_id", "orders"),
    }


@pytest.mark.parametrize(
    "mutate, where",
    [
        # a misspelt field that the (lenient) pydantic model would drop silently
        (lambda p: p.update(primarykey=True), "schema/0/properties/0"),
        (lambda p: p.update(logicalType="text"), "schema/0/properties/0/logicalType"),
        (lambda p: p["quality"][0].update(type="great"), "schema/0/properties/0/quality/0/type"),
        (lambda p: p["quality"][0].pop("engine"), "schema/0/properties/0/quality/0"),
    ],
)
def test_the_lint_rejects_what_the_standard_rejects(odcs_validator, mutate, where):
    doc = copy.deepcopy(yaml.safe_load(contract_files()["orders"].read_text()))
    mutate(doc["schema"][0]["properties"][0])
    problems = _problems(odcs_validator, doc)
    assert problems and any(p.startswith(where) for p in problems), problems


def test_a_relationship_to_a_key_of_another_type_fails_the_cross_contract_lint(tmp_path):
    for path in contract_files().values():
        (tmp_path / path.name).write_text(path.read_text())
    text = (tmp_path / "restaurants.odcs.yaml").read_text()
    (tmp_path / "restaurants.odcs.yaml").write_text(
        text.replace(
            "  - name: restaurant_id\n    logicalType: string\n    physicalType: string",
            "  - name: restaurant_id\n    logicalType: integer\n    physicalType: bigint",
            1,
        )
    )
    contracts = {name: load_contract(name, tmp_path) for name in contract_files(tmp_path)}
    with pytest.raises(ContractError, match="restaurant_id is string but restaurants"):
        check_references(contracts)
