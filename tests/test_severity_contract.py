"""The severity contract (README "Severity contract"): each rule's default severity is pinned
here, so changing one is a decision reviewed in this file, not a side effect."""

from __future__ import annotations

from batchscan.records import Severity
from batchscan.rules import CATALOGUE

PINNED = {
    "ENG002": "warning", "ENG003": "error", "ENG004": "error", "PKL001": "error",
    "PKL002": "warning", "PKL003": "info", "PKL004": "warning", "PKL005": "error",
    "PKL006": "error", "PKL007": "warning", "PKL008": "error", "PKL009": "info",
    "PKL010": "warning", "PKL011": "error", "PKL012": "warning", "PKL013": "warning",
    "PTL001": "warning", "PTL002": "warning", "NPY001": "info", "NPY002": "warning",
    "NPY003": "warning", "ZIP001": "error", "ZIP002": "error", "ZIP003": "warning",
    "ZIP004": "warning", "ZIP005": "warning", "ZIP006": "info", "ZIP007": "warning",
    "ZIP008": "warning", "ZIP009": "warning", "ZIP010": "warning", "ZIP011": "info",
    "ZIP012": "error", "ZIP013": "error", "TAR001": "error", "TAR002": "error",
    "TAR003": "warning", "TAR004": "warning", "TAR005": "warning", "TAR006": "error",
    "SVZ001": "error", "SVZ002": "info", "SVZ003": "warning", "CMP001": "warning",
    "CMP002": "warning", "CFG001": "warning", "CFG002": "error", "CFG003": "error",
    "CFG004": "info", "CFG005": "error", "CFG006": "warning", "CFG007": "error",
    "CFG008": "warning", "CFG009": "error", "CFG010": "info", "CFG011": "warning",
    "JSN001": "warning", "MLF001": "warning", "MLF002": "warning", "MLF003": "warning",
    "YML001": "error", "YML002": "info", "YML003": "warning", "YML004": "info",
    "HDF001": "warning", "HDF002": "warning", "KRS001": "error", "SFT001": "warning",
    "SFT002": "warning", "SFT003": "warning",
    "GGF001": "warning", "GGF002": "warning", "ONX001": "error", "ONX002": "warning",
    "ONX003": "error", "ONX004": "warning", "ONX005": "warning", "ONX006": "error",
    "TFG001": "error",
    "TFG002": "error", "TFG003": "warning", "TFG004": "warning", "PYS001": "error",
    "PYS002": "warning", "PYS003": "info", "PYS004": "warning", "PYS005": "warning",
    "TST001": "info",
    # fmt-tree (issue 20)
    "XGB001": "info", "XGB002": "warning", "LGB001": "warning", "LGB002": "warning",
    "SKO001": "warning", "SKO002": "error", "SKO003": "error", "SKO004": "error",
    "SKO005": "info", "RDS001": "error", "RDS002": "error", "RDS003": "warning",
    "FLX001": "info", "ORB001": "error", "ORB002": "info",
    # fmt-pack (issue 20)
    "XML001": "error", "XML002": "error", "XML003": "warning", "PMM001": "warning",
    "PMM002": "info", "OVN001": "warning", "OVN002": "warning", "OVN003": "warning",
    "MAR001": "warning", "MAR002": "warning", "MAR003": "warning", "MAR004": "warning",
    "RAR001": "info", "RAR002": "error", "RAR003": "error", "RAR004": "warning",
    "RAR005": "info", "EXE001": "warning", "TRT001": "warning", "TRT002": "info",
    "TRT003": "error",
    "TAR007": "warning", "TAR008": "info",
}

# Formats III, binary formats (fmt-bin): one line per rule so parallel additions merge.
PINNED["TFL001"] = "warning"
PINNED["TFL002"] = "error"
PINNED["TFL003"] = "warning"
PINNED["TFL004"] = "error"
PINNED["TFL005"] = "warning"
PINNED["PTE001"] = "warning"
PINNED["PTE002"] = "warning"
PINNED["PTE003"] = "warning"
PINNED["PTE004"] = "warning"
PINNED["CML001"] = "warning"
PINNED["CML002"] = "error"
PINNED["CML003"] = "warning"
PINNED["PDL001"] = "error"
PINNED["PDL002"] = "error"
PINNED["PDL003"] = "warning"
PINNED["MXN001"] = "warning"
PINNED["MXN002"] = "error"
PINNED["MXN003"] = "warning"


def test_every_rule_has_a_pinned_default_severity() -> None:
    assert {r.rule_id for r in CATALOGUE} == set(PINNED)


def test_each_rule_default_severity_matches_the_contract() -> None:
    for rule in CATALOGUE:
        assert rule.severity is Severity(PINNED[rule.rule_id]), rule.rule_id
