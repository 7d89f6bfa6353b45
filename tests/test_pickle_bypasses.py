"""Regressions named after the advisory or technique they cover (attacks.md section 2).

Fixtures come from tests/fixtures/generate.py; they are written, never loaded.
"""

from __future__ import annotations

import pickle
import struct

import pytest

from batchscan.records import Finding, Severity
from batchscan.workers.base import Limits
from batchscan.workers.registry import context
from conftest import rules, scan_pickle, worst
from fixtures.generate import (
    PAYLOAD,
    benign_pickles,
    frame_divergent,
    glob0,
    malicious_pickles,
    s4,
    suspicious_pickles,
)

MALICIOUS = malicious_pickles()
SUSPICIOUS = suspicious_pickles()
BENIGN = benign_pickles()


def named(findings: list[Finding], qualname: str) -> list[Finding]:
    return [f for f in findings if f.rule_id == "PKL001" and f"`{qualname}`" in f.message]


def calls_with_payload(findings: list[Finding], qualname: str) -> bool:
    return any(
        f.message.startswith("calls") and PAYLOAD in (f.evidence or "")
        for f in named(findings, qualname)
    )


@pytest.mark.parametrize("name", sorted(MALICIOUS))
def test_every_malicious_fixture_is_error(name: str) -> None:
    findings = scan_pickle(MALICIOUS[name])
    assert worst(findings) is Severity.ERROR, (name, findings)


@pytest.mark.parametrize("name", sorted(SUSPICIOUS))
def test_every_suspicious_fixture_is_warning(name: str) -> None:
    findings = scan_pickle(SUSPICIOUS[name])
    assert worst(findings) is Severity.WARNING, (name, findings)


@pytest.mark.parametrize("name", sorted(BENIGN))
def test_benign_fixture_has_no_warning(name: str) -> None:
    findings = scan_pickle(BENIGN[name])
    assert all(f.severity.rank < Severity.WARNING.rank for f in findings), findings


@pytest.mark.parametrize("proto", range(6))
def test_reduce_evidence_names_callable_argument_and_offset(proto: int) -> None:
    data = MALICIOUS[f"reduce_os_system_p{proto}.pkl"]
    findings = scan_pickle(data)
    hit = named(findings, "posix.system")
    assert hit and hit[0].evidence == "posix.system('true')"
    assert hit[0].offset is not None and data[hit[0].offset : hit[0].offset + 1] == b"R"


def test_inst_protocol0_is_a_call() -> None:
    assert calls_with_payload(scan_pickle(MALICIOUS["inst_p0.pkl"]), "os.system")


def test_obj_call_hidden_by_pop_GHSA_mxhj_88fx_4pcv() -> None:
    findings = scan_pickle(MALICIOUS["obj_then_pop_GHSA-mxhj-88fx-4pcv.pkl"])
    assert calls_with_payload(findings, "os.system")


def test_newobj_constructs_dangerous_class() -> None:
    findings = scan_pickle(MALICIOUS["newobj_subprocess_popen.pkl"])
    assert named(findings, "subprocess.Popen")[0].message.startswith("constructs")


def test_build_setstate_injection_without_reduce() -> None:
    findings = scan_pickle(MALICIOUS["build_setstate_injection.pkl"])
    assert "PKL006" in rules(findings)
    # the second BUILD calls the injected os.system with the BUILD state
    assert calls_with_payload(findings, "os.system")


def test_stack_global_names_through_memo() -> None:
    assert calls_with_payload(scan_pickle(MALICIOUS["memo_stack_global.pkl"]), "os.system")


def test_stack_global_computed_names_rot13() -> None:
    findings = scan_pickle(MALICIOUS["computed_rot13_names.pkl"])
    assert "PKL005" in rules(findings)
    assert calls_with_payload(findings, "os.system")


def test_dotted_name_through_innocent_module_GHSA_5j3x_jp52_966f() -> None:
    findings = scan_pickle(MALICIOUS["dotted_pathlib_os_system_GHSA-5j3x-jp52-966f.pkl"])
    hit = named(findings, "pathlib.os.system")
    assert hit and "os" in hit[0].message


def test_dotted_name_reaching_builtins() -> None:
    findings = scan_pickle(MALICIOUS["dotted_rebuild_tensor_builtins.pkl"])
    assert any("__builtins__" in f.message for f in findings if f.severity is Severity.ERROR)


@pytest.mark.parametrize(
    ("fixture", "target"),
    [
        ("resolver_import_module_vars_getitem.pkl", "os.system"),
        ("resolver_logging_config_resolve.pkl", "posix.system"),
        ("resolver_torch_import_dotted_name.pkl", "os.system"),
        ("resolver_pkgutil_GHSA-vvpj-8cmc-gx39.pkl", "os.system"),
        ("getattr_chain.pkl", "os.system"),
    ],
)
def test_string_to_callable_resolvers_are_followed(fixture: str, target: str) -> None:
    assert calls_with_payload(scan_pickle(MALICIOUS[fixture]), target)


def test_nested_pickle_via_torch_load_from_bytes() -> None:
    findings = scan_pickle(MALICIOUS["nested_load_from_bytes.pkl"])
    assert named(findings, "torch.storage._load_from_bytes")
    inner = [f for f in findings if f.member and f.member.startswith("pickle@")]
    assert any(f.rule_id == "PKL001" and "posix.system" in f.message for f in inner)


def test_nested_pickle_via_loads_of_base64() -> None:
    findings = scan_pickle(MALICIOUS["nested_pickle_loads_base64.pkl"])
    inner = [f for f in findings if f.member and f.member.startswith("pickle@")]
    assert any(f.rule_id == "PKL001" for f in inner)


def test_nullifai_payload_before_damage_is_error_not_just_malformed() -> None:
    findings = scan_pickle(MALICIOUS["nullifai_truncated.pkl"])
    assert {"PKL001", "PKL004"} <= rules(findings)
    assert calls_with_payload(findings, "os.system")


def test_frame_boundary_divergence_is_walked_both_ways() -> None:
    findings = scan_pickle(frame_divergent())
    assert "PKL008" in rules(findings)
    assert calls_with_payload(findings, "os.system")


def test_frame_divergence_is_not_reported_for_ordinary_framed_pickles() -> None:
    data = pickle.dumps([{"k": bytes(70_000)}, "x" * 100_000, list(range(10_000))], 5)
    assert "PKL008" not in rules(scan_pickle(data))


def test_zip_appended_to_pickle_is_reported_and_pickle_scanned() -> None:
    findings = scan_pickle(MALICIOUS["polyglot_pickle_zip.pkl"])
    assert "PKL009" in rules(findings)
    assert calls_with_payload(findings, "posix.system")


def test_second_concatenated_pickle_is_scanned() -> None:
    findings = scan_pickle(MALICIOUS["second_stream_payload.pkl"])
    assert calls_with_payload(findings, "posix.system")


def test_build_on_imported_module_is_a_gadget() -> None:
    findings = scan_pickle(MALICIOUS["build_on_module.pkl"])
    assert any(f.rule_id == "PKL006" and "torch._utils" in f.message for f in findings)


def test_protocol0_python2_names_are_mapped_like_fix_imports() -> None:
    findings = scan_pickle(MALICIOUS["p0_unicode_escape_builtin_eval.pkl"])
    hit = named(findings, "builtins.eval")
    assert hit and "\\u0074" not in (hit[0].evidence or "") and PAYLOAD in (hit[0].evidence or "")


def test_extension_codes_are_reported() -> None:
    assert "PKL007" in rules(scan_pickle(SUSPICIOUS["ext_code.pkl"]))


def test_blacklist_flags_global_names() -> None:
    data = b"\x80\x02" + glob0("mypkg.models", "Net") + b")\x81."
    assert "PKL011" not in rules(scan_pickle(data))
    findings = scan_pickle(data, context(blacklist=("mypkg.*",)))
    assert "PKL011" in rules(findings) and worst(findings) is Severity.ERROR


def test_unknown_function_call_is_warning_unknown_class_is_info() -> None:
    func = b"\x80\x02" + glob0("somepkg", "build_thing") + b")R."
    cls = b"\x80\x02" + glob0("somepkg", "Thing") + b")\x81."
    assert worst(scan_pickle(func)) is Severity.WARNING
    assert worst(scan_pickle(cls)) is Severity.INFO


def test_truncated_stream_is_malformed_warning_not_clean() -> None:
    data = pickle.dumps({"a": list(range(100))}, 4)[:-20]
    findings = scan_pickle(data)
    assert "PKL004" in rules(findings) and worst(findings) is Severity.WARNING


def test_unknown_opcode_is_malformed() -> None:
    findings = scan_pickle(b"\x80\x02]\xf0.")
    assert any(f.rule_id == "PKL004" and "0xf0" in f.message for f in findings)


def test_stack_underflow_across_mark_is_malformed() -> None:
    # REDUCE may not pop below a MARK (the C unpickler's fence)
    findings = scan_pickle(b"\x80\x02" + glob0("os", "system") + b"(R.")
    assert any(f.rule_id == "PKL004" and "underflow" in f.message for f in findings)


def test_huge_bytes_field_is_skipped_by_length_and_payload_after_it_found() -> None:
    big = 3 * 1024 * 1024
    data = (b"\x80\x04]" + b"\x8e" + struct.pack("<Q", big) + bytes(big) + b"a"
            + glob0("os", "system") + s4(PAYLOAD) + b"\x85Ra.")
    assert calls_with_payload(scan_pickle(data), "os.system")


def test_opcode_budget_gives_limit_finding() -> None:
    data = pickle.dumps([frozenset([i]) for i in range(5000)], 4)  # FROZENSET: checked path
    findings = scan_pickle(data, context(limits=Limits(max_opcodes=100)))
    assert "PKL012" in rules(findings) and worst(findings) is Severity.WARNING


def test_protocol0_text_literals_parse() -> None:
    data = b"(I01\nI00\nL12345678901234567890L\nS'esc\\x41\\n'\nVuni\\u00e9\nF1.5\nl."
    assert not rules(scan_pickle(data))
