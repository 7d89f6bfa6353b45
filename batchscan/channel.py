"""The coordinator's side of the worker channel: results are read, not run.

pebble returns results through a `multiprocessing` pipe, and the stock receiving end is
`pickle.loads`. A worker whose parser has been turned into code execution by a hostile file
can write its own bytes to that pipe; unpickled by the stock reader they would run in the
coordinator, outside every sandbox layer. So the pool's receiving end is replaced here:

- a message is at most `MAX_MESSAGE` bytes (a record holds at most 1 MiB of findings and a
  batch at most 64 files, see `batchscan/schema.py` and the coordinator's batching);
- it is unpickled by `_ResultUnpickler`, whose `find_class` knows only pebble's envelope
  types, batchscan's result dataclasses and enums, and the built-in exception classes (a
  failed task carries one), and answers `getattr` with a function that returns enum members
  of those enums and nothing else; any other global ends the load before anything is called;
- the message must then have the shape pebble expects (an `Acknowledgement`, or a
  `TaskResult`/`TaskProblem` holding a `Result` with a `BatchResult` or an exception), so
  pebble's own threads never meet a value they would trip over.

A message that fails any of this is raised as `OSError`, which pebble turns into a broken pool:
the coordinator retries the batch one file at a time, and the file that keeps breaking the
pool gets its own `crashed` record (coordinator.py). The records themselves are then
validated and bounded by `schema.sanitize`, as before.
"""

from __future__ import annotations

import builtins
import functools
import io
import pickle
from typing import Any

MAX_MESSAGE = 128 * 1024 * 1024

# (module, qualified name) of every class or function a legitimate message names.
_ALLOWED: frozenset[tuple[str, str]] = frozenset({
    ("pebble.pool.process", "Acknowledgement"),
    ("pebble.pool.process", "TaskResult"),
    ("pebble.pool.process", "TaskProblem"),
    ("pebble.common.types", "Result"),
    ("pebble.common.types", "ResultStatus"),
    ("pebble.common.types", "RemoteException.rebuild_exception"),
    ("batchscan.workers.jobs", "BatchResult"),
    ("batchscan.records", "FileResult"),
    ("batchscan.records", "Finding"),
    ("batchscan.records", "Severity"),
    ("batchscan.records", "Status"),
})


class RefusedMessage(OSError):
    """A worker sent something that is not a result message."""


_ENUMS: frozenset[tuple[str, str]] = frozenset({
    ("batchscan.records", "Severity"),
    ("batchscan.records", "Status"),
    ("pebble.common.types", "ResultStatus"),
})


def _enum_member(cls: Any, name: Any) -> Any:
    """What `getattr` may do in a message: some Pythons (3.11.2, 3.12+) pickle an enum member
    as `getattr(EnumClass, "NAME")`. A general getattr would reach `__class__`,
    `__subclasses__` and from there anything; this one returns members of our enums only."""
    if (getattr(cls, "__module__", None), getattr(cls, "__qualname__", None)) in _ENUMS and (
        type(name) is str and name in cls.__members__
    ):
        return cls.__members__[name]
    raise pickle.UnpicklingError(f"getattr({cls!r:.80}, {name!r:.80}) is not an enum member")


class _ResultUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        if module in ("builtins", "__builtin__") and name == "getattr":
            return _enum_member
        if module == "builtins" and "." not in name:
            found = getattr(builtins, name, None)
            if isinstance(found, type) and issubclass(found, BaseException):
                return found
        raise pickle.UnpicklingError(f"global {module}.{name} is not a result type")


def loads(data: bytes) -> Any:
    """Unpickle and check one message from a worker (`RefusedMessage` if it is not one)."""
    try:
        message = _ResultUnpickler(io.BytesIO(data)).load()
    except Exception as exc:  # any failure of a hostile stream: refuse, never propagate
        raise RefusedMessage(f"refused a message from a worker: {exc}"[:500]) from None
    _check_shape(message)
    return message


@functools.cache
def _types() -> tuple[Any, ...]:
    """pebble's message types and ours, imported once (pebble is loaded with the pool)."""
    from pebble.common.types import Result, ResultStatus
    from pebble.pool.process import Acknowledgement, TaskProblem, TaskResult

    from batchscan.workers.jobs import BatchResult

    return Acknowledgement, TaskProblem, TaskResult, Result, ResultStatus, BatchResult


def _check_shape(message: Any) -> None:
    Acknowledgement, TaskProblem, TaskResult, Result, ResultStatus, BatchResult = _types()
    kind = type(message)
    if kind is Acknowledgement:
        if type(message.worker) is int and type(message.task) is int:
            return
    elif kind is TaskProblem:
        if type(message.task) is int and isinstance(message.error, BaseException):
            return
    elif kind is TaskResult and type(message.task) is int:
        result = message.result
        if type(result) is Result and type(result.status) is ResultStatus:
            if result.status is ResultStatus.SUCCESS and type(result.value) is BatchResult:
                return
            if result.status is not ResultStatus.SUCCESS and isinstance(
                result.value, BaseException
            ):
                return
    raise RefusedMessage(f"refused a message from a worker: unexpected {kind.__name__}")


def harden(pool: Any) -> None:
    """Make `pool` (a pebble ProcessPool not started yet) read its results with `loads`.

    pebble creates the channel when the pool starts; the hook wraps that step. If pebble's
    internals are not what this was written against, it raises rather than leave the stock
    `pickle.loads` in place.
    """
    manager: Any = getattr(getattr(pool, "_pool_manager", None), "worker_manager", None)
    create = getattr(manager, "create_channels", None)
    if not callable(create) or not hasattr(manager, "pool_channel"):
        raise RuntimeError("pebble's pool internals changed: cannot guard the result channel")

    def create_channels() -> None:
        create()
        channel = manager.pool_channel
        reader = channel.reader
        if not callable(getattr(reader, "recv_bytes", None)):
            raise RuntimeError("pebble's result channel has no recv_bytes")

        def recv() -> Any:
            # recv_bytes raises OSError past the bound, before reading the body.
            return loads(reader.recv_bytes(MAX_MESSAGE))

        channel.recv = recv

    manager.create_channels = create_channels
