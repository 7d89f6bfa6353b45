"""The coordinator's reader of worker messages (batchscan/channel.py): data in, never code.

Effects inside real workers are tested in test_sandbox_escape.py; here, what the reader takes
and refuses, message by message, with the same pickler multiprocessing uses."""

from __future__ import annotations

import io
import pickle
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any

import pytest
from pebble.common.types import RemoteException, Result, ResultStatus
from pebble.pool.process import Acknowledgement, TaskProblem, TaskResult

from batchscan import channel
from batchscan.records import FileResult, Finding, Severity, Status
from batchscan.workers.jobs import BatchResult


def dumps(obj: Any) -> bytes:
    return bytes(ForkingPickler.dumps(obj))


def batch() -> BatchResult:
    finding = Finding("PKL001", Severity.ERROR, "calls os.system", "a/b", 7, "os.system", "CWE-502")
    result = FileResult(format="pickle", size=3, sha256="ab" * 32, findings=(finding,),
                        status=Status.ERROR, error="e", duration_ms=1.5, findings_dropped=2)
    return BatchResult((result,), (("landlock", "applied"),), 1234)


@pytest.mark.parametrize("message", [
    Acknowledgement(11, 3),
    TaskResult(3, Result(ResultStatus.SUCCESS, batch())),
    TaskResult(4, Result(ResultStatus.FAILURE, RemoteException(MemoryError("x"), "tb"))),
    TaskProblem(5, TypeError("cannot pickle")),
], ids=["ack", "result", "failure", "problem"])
def test_every_message_pebble_sends_is_read_back_equal(message: Any) -> None:
    read = channel.loads(dumps(message))
    assert type(read) is type(message)
    if isinstance(message, TaskResult) and message.result.status is ResultStatus.SUCCESS:
        assert read == message
    elif isinstance(message, TaskResult):
        assert type(read.result.value) is MemoryError
    elif isinstance(message, TaskProblem):
        assert type(read.error) is TypeError


def payload(tmp_path: Path, module: str, name: str) -> bytes:
    marker = str(tmp_path / "ran")
    return (b"\x80\x02c" + f"{module}\n{name}\n".encode()
            + pickle.dumps((marker, "x"), protocol=2)[2:-1] + b"R.")


@pytest.mark.parametrize(("module", "name"), [
    ("builtins", "open"), ("posix", "system"), ("os", "system"), ("builtins", "eval"),
    ("builtins", "getattr"), ("pebble.common.types", "RemoteException"),
    ("batchscan.records", "Finding.__init__"), ("builtins", "BaseException.with_traceback"),
    ("subprocess", "Popen"), ("batchscan.workers.faults", "_create"),
])
def test_a_hostile_global_is_refused_before_anything_is_called(
    tmp_path: Path, module: str, name: str
) -> None:
    with pytest.raises(channel.RefusedMessage, match=r"not a result type|not an enum member"):
        channel.loads(payload(tmp_path, module, name))
    assert not (tmp_path / "ran").exists()


def enum_by_getattr(module: str, qualname: str, name: str) -> bytes:
    """How Python 3.11.2 and 3.12+ pickle an enum member: getattr(EnumClass, "NAME")."""
    return (b"\x80\x02c__builtin__\ngetattr\nc" + f"{module}\n{qualname}\n".encode()
            + pickle.dumps(name, protocol=2)[2:-1] + b"\x86R.")


def test_enum_members_pickled_through_getattr_are_read() -> None:
    for module, qualname, name in [("batchscan.records", "Severity", "ERROR"),
                                   ("batchscan.records", "Status", "CLEAN"),
                                   ("pebble.common.types", "ResultStatus", "SUCCESS")]:
        data = enum_by_getattr(module, qualname, name)
        assert channel._ResultUnpickler(io.BytesIO(data)).load().name == name


@pytest.mark.parametrize(("module", "qualname", "name"), [
    ("batchscan.records", "Severity", "__class__"),
    ("batchscan.records", "Severity", "__init__"),
    ("batchscan.records", "Finding", "__init__"),
    ("batchscan.records", "Status", "_member_map_"),
    ("pebble.common.types", "Result", "__class__"),
    ("builtins", "OSError", "__subclasses__"),
])
def test_getattr_reaches_nothing_but_enum_members(module: str, qualname: str, name: str) -> None:
    with pytest.raises(channel.RefusedMessage):
        channel.loads(enum_by_getattr(module, qualname, name))


def test_the_payload_does_run_under_the_stock_reader(tmp_path: Path) -> None:
    """The control: the same bytes through pickle.loads create the marker."""
    handle = pickle.loads(payload(tmp_path, "builtins", "open"))
    handle.close()
    assert (tmp_path / "ran").exists()


@pytest.mark.parametrize("message", [
    TaskResult(1, "not a Result"),
    TaskResult(1, Result(ResultStatus.SUCCESS, {"results": []})),
    TaskResult("1", Result(ResultStatus.SUCCESS, batch())),
    TaskResult(1, Result(ResultStatus.FAILURE, "no exception")),
    Acknowledgement("pid", 1),
    TaskProblem(1, "no exception"),
    batch(),
    [Acknowledgement(1, 1)],
    None,
], ids=["result-str", "value-dict", "task-str", "failure-str", "ack-str", "problem-str",
        "bare-batch", "list", "none"])
def test_a_message_of_the_wrong_shape_is_refused(message: Any) -> None:
    with pytest.raises(channel.RefusedMessage, match="unexpected"):
        channel.loads(dumps(message))


@pytest.mark.parametrize("data", [b"", b"\x80\x05", b"garbage", b"\x80\x02}q\x00(X" + b"\xff" * 9])
def test_damaged_bytes_are_refused_not_raised_raw(data: bytes) -> None:
    with pytest.raises(channel.RefusedMessage):
        channel.loads(data)


def test_a_hardened_pool_reads_through_the_guard_and_bounds_the_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`harden` swaps the receiving end that pebble creates when the pool starts."""
    from pebble import ProcessPool

    pool = ProcessPool(max_workers=1)
    manager = pool._pool_manager.worker_manager
    channel.harden(pool)
    manager.create_channels()
    try:
        writer = manager.workers_channel.writer
        writer.send_bytes(dumps(Acknowledgement(1, 2)))
        assert manager.pool_channel.recv() == Acknowledgement(1, 2)
        writer.send_bytes(dumps(TaskResult(1, "x")))
        with pytest.raises(OSError, match="refused"):
            manager.pool_channel.recv()
        monkeypatch.setattr(channel, "MAX_MESSAGE", 64)
        manager.create_channels()
        manager.workers_channel.writer.send_bytes(b"x" * 65)
        with pytest.raises(OSError):
            manager.pool_channel.recv()
    finally:
        manager.close_channels()


def test_harden_refuses_a_pool_it_does_not_understand() -> None:
    class Other:
        pass

    with pytest.raises(RuntimeError, match="cannot guard the result channel"):
        channel.harden(Other())
