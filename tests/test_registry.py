"""The format registry and rule tables: explicit, complete and stable (STYLE.md 2 and 4)."""

from __future__ import annotations

import re

from batchscan import rules as catalogue
from batchscan.workers import configs, faults
from batchscan.workers.registry import SCANNERS
from batchscan.workers.task import ENGINE_RULES

RULE_ID = re.compile(r"[A-Z]{3}\d{3}\Z")


def all_rules() -> list[object]:
    """Every distinct rule object (shared config rules appear in several modules)."""
    rules: dict[int, object] = {id(rule): rule for rule in ENGINE_RULES}
    for module in (*SCANNERS, faults):
        rules.update((id(rule), rule) for rule in module.RULES)
    return list(rules.values())


def test_every_scanner_module_has_the_shared_surface_and_a_docstring() -> None:
    for module in SCANNERS:
        assert isinstance(module.FORMAT, str) and module.FORMAT
        assert callable(module.sniff) and callable(module.scan)
        assert module.RULES, module.FORMAT
        doc = module.__doc__ or ""  # type: ignore[attr-defined]
        shared = configs.__doc__ or ""
        assert "Rules" in doc
        for rule in module.RULES:
            documented_here = rule.rule_id in doc
            documented_shared = rule in configs.CONFIG_RULES and rule.rule_id in shared
            assert documented_here or documented_shared, (module.FORMAT, rule.rule_id)


def test_rule_ids_are_unique_well_formed_and_carry_a_cwe() -> None:
    rules = all_rules()
    ids = [rule.rule_id for rule in rules]  # type: ignore[attr-defined]
    assert len(ids) == len(set(ids))
    for rule in rules:
        assert RULE_ID.match(rule.rule_id), rule  # type: ignore[attr-defined]
        assert rule.cwe.startswith("CWE-"), rule  # type: ignore[attr-defined]


def test_format_ids_are_unique() -> None:
    formats = [module.FORMAT for module in SCANNERS]
    assert len(formats) == len(set(formats))


def test_the_catalogue_holds_exactly_the_rules_the_modules_raise() -> None:
    """Every rule a module or the engine can raise is the catalogue's object, and the
    catalogue lists nothing that no module uses (SARIF and the cache read only it)."""
    used = {id(rule) for rule in all_rules()}
    assert used == {id(rule) for rule in catalogue.CATALOGUE}
    assert len(catalogue.BY_ID) == len(catalogue.CATALOGUE)


def test_every_rule_says_what_it_detects_and_how_to_fix_it() -> None:
    for rule in catalogue.CATALOGUE:
        assert len(rule.description) > 20 and rule.description.endswith("."), rule.rule_id
        assert len(rule.fix) > 20 and rule.fix.endswith("."), rule.rule_id
        assert rule.fix != rule.description, rule.rule_id
