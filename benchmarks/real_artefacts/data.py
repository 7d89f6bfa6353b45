"""Plain data pickled by pandas, dill, cloudpickle, numpy and joblib."""

from __future__ import annotations

import datetime as dt
import decimal
import fractions
import pickle
import uuid
from collections import Counter, OrderedDict, defaultdict, deque
from typing import Any

from benchmarks.real_artefacts import Out


def _plain() -> dict[str, Any]:
    return {
        "ints": list(range(5)), "floats": [0.5, float("inf")], "complex": 1 + 2j,
        "bytes": b"\x00\x01", "bytearray": bytearray(b"ab"), "set": {1, 2}, "frozenset":
        frozenset("ab"), "tuple": (1, "a"), "none": None, "date": dt.date(2024, 1, 2),
        "datetime": dt.datetime(2024, 1, 2, 3, 4, 5), "tz": dt.datetime(2024, 1, 2,
                                                                      tzinfo=dt.UTC),
        "timedelta": dt.timedelta(days=1), "decimal": decimal.Decimal("1.5"),
        "fraction": fractions.Fraction(1, 3), "uuid": uuid.UUID(int=1),
        "ordered": OrderedDict(a=1), "counter": Counter("aab"), "deque": deque([1, 2]),
        "defaultdict": defaultdict(list, {"a": [1]}), "range": range(3), "slice": slice(1, 2),
    }


def write_pandas(out: Out) -> None:
    import numpy as np
    import pandas as pd

    frames = {
        "strings": pd.DataFrame({"name": ["a", "b", None], "n": [1, 2, 3]}),
        "numeric": pd.DataFrame(np.arange(12.0).reshape(4, 3), columns=list("xyz")),
        "categorical": pd.DataFrame({"c": pd.Categorical(["x", "y", "x"])}),
        "tz_timestamps": pd.DataFrame({"t": pd.date_range("2024-01-01", periods=3,
                                                          tz="Europe/Paris")}),
        "utc_timestamps": pd.DataFrame({"t": pd.date_range("2024-01-01", periods=3, tz="UTC")}),
        "naive_timestamps": pd.DataFrame({"t": pd.date_range("2024-01-01", periods=3)}),
        "period_interval": pd.DataFrame({"p": pd.period_range("2024-01", periods=3, freq="M"),
                                         "i": pd.interval_range(0, 3)}),
        "multiindex": pd.DataFrame({"v": [1, 2]}, index=pd.MultiIndex.from_tuples(
            [("a", 1), ("b", 2)])),
        "nullable": pd.DataFrame({"i": pd.array([1, None], dtype="Int64"),
                                  "b": pd.array([True, None], dtype="boolean")}),
        "timedelta": pd.DataFrame({"d": pd.to_timedelta([1, 2], unit="D")}),
    }
    try:
        frames["arrow_types"] = pd.DataFrame({"s": pd.array(["a", "b"], dtype="string[pyarrow]"),
                                              "l": pd.array([1, 2], dtype="int64[pyarrow]")})
    except Exception as exc:
        print(f"arrow: {exc}")
    for name, frame in frames.items():
        frame.to_pickle(out.path(f"{name}.pkl", "DataFrame.to_pickle"))
        frame.to_pickle(out.path(f"{name}.pkl.gz", "DataFrame.to_pickle(.gz)"))
        with out.path(f"{name}_p2.pkl", "pickle protocol 2").open("wb") as fh:
            pickle.dump(frame, fh, protocol=2)
    pd.Series([1.0, 2.0], name="s").to_pickle(out.path("series.pkl", "Series.to_pickle"))
    with out.path("timestamp_tz.pkl", "pickle of a tz-aware Timestamp").open("wb") as fh:
        pickle.dump(pd.Timestamp("2024-01-01", tz="America/New_York"), fh)
    try:
        frames["numeric"].to_parquet(out.path("numeric.parquet", "DataFrame.to_parquet"))
        frames["numeric"].to_feather(out.path("numeric.feather", "DataFrame.to_feather"))
    except Exception as exc:
        print(f"parquet: {exc}")


def write_dill(out: Out) -> None:
    import dill
    import numpy as np

    objects: dict[str, Any] = {
        "plain": _plain(),
        "numpy": {"a": np.arange(5), "f": np.float32(1.5), "m": np.eye(2)},
        "array_module": __import__("array").array("d", [1.0, 2.0]),
        "types": [int, complex, float, str],
        "lambda": lambda x: x + 1,
        "function_with_closure": _make_closure(3),
    }
    for name, obj in objects.items():
        for proto in (2, 4):
            with out.path(f"{name}_p{proto}.pkl", f"dill.dump protocol {proto}",
                          ships_code=_by_value(obj)).open("wb") as fh:
                dill.dump(obj, fh, protocol=proto)
    with out.path("recurse_lambda.pkl", "dill.dump(recurse=True)",
                  ships_code=True).open("wb") as fh:
        dill.dump(lambda x: x * 2, fh, recurse=True)


def _by_value(obj: Any) -> bool:
    """dill and cloudpickle pickle a function, or an instance of a class, by value (its code)
    when it is not importable by name: lambdas, closures, local functions and classes."""
    import types

    target = obj if isinstance(obj, types.FunctionType) else type(obj)
    qualname = getattr(target, "__qualname__", "")
    return "<lambda>" in qualname or "<locals>" in qualname


def _make_closure(n: int) -> Any:
    def add(x: int) -> int:
        return x + n

    return add


def write_cloudpickle(out: Out) -> None:
    import cloudpickle
    import numpy as np

    def scale(x: Any, factor: float = 2.0) -> Any:
        return x * factor

    objects: dict[str, Any] = {
        "plain": _plain(), "numpy": np.arange(6).reshape(2, 3), "lambda": lambda x: x + 1,
        "local_function": scale, "closure": _make_closure(2),
        "local_class_instance": _local_instance(),
    }
    for name, obj in objects.items():
        with out.path(f"{name}.pkl", "cloudpickle.dump", ships_code=_by_value(obj)).open(
                "wb") as fh:
            cloudpickle.dump(obj, fh)


def _local_instance() -> Any:
    class Config:
        def __init__(self) -> None:
            self.lr = 0.1
            self.layers = [4, 2]

    return Config()


def write_numpy(out: Out) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    arrays: dict[str, Any] = {
        "float32": rng.standard_normal((4, 4)).astype(np.float32), "int8": np.arange(8,
                                                                                     dtype=np.int8),
        "structured": np.zeros(3, dtype=[("x", "f4"), ("name", "U5")]), "bool": np.ones(3, bool),
        "fortran": np.asfortranarray(np.ones((2, 3))), "datetime64": np.array(
            ["2024-01-01"], dtype="datetime64[D]"), "complex": np.ones(2, np.complex128),
        "float16": np.ones(3, np.float16), "scalar": np.array(1.5), "empty": np.zeros((0, 3)),
    }
    for name, arr in arrays.items():
        np.save(out.path(f"{name}.npy", "np.save"), arr)
    np.save(out.path("objects.npy", "np.save(object array, allow_pickle=True)"),
            np.array([{"a": 1}, [1, 2], "s", None], dtype=object), allow_pickle=True)
    np.save(out.path("object_strings.npy", "object array of strings"),
            np.array(["a", "bb"], dtype=object), allow_pickle=True)
    np.savez(out.path("arrays.npz", "np.savez"), **arrays)
    np.savez_compressed(out.path("arrays_compressed.npz", "np.savez_compressed"),
                        a=arrays["float32"], b=arrays["int8"])
    np.savez(out.path("with_objects.npz", "np.savez with an object array"),
             a=arrays["float32"], o=np.array([None, {"k": 1}], dtype=object))
    for proto in (2, 4, 5):
        with out.path(f"arrays_p{proto}.pkl", f"pickle of arrays protocol {proto}").open(
                "wb") as fh:
            pickle.dump(arrays, fh, protocol=proto)
    with out.path("rng_state.pkl", "pickle of Generator and RandomState").open("wb") as fh:
        pickle.dump({"gen": rng, "legacy": np.random.RandomState(0), "dtype": np.dtype("f4")}, fh)
    with out.path("plain_python.pkl", "pickle of stdlib data types").open("wb") as fh:
        pickle.dump(_plain(), fh)


def write_joblib(out: Out) -> None:
    import joblib
    import numpy as np

    obj = {"w": np.arange(1000, dtype=np.float32), "meta": _plain(),
           "objects": np.array(["a", 1], dtype=object)}
    joblib.dump(obj, out.path("data.joblib", "joblib.dump"))
    for compress in ("zlib", "gzip", "bz2", "lzma", "xz"):
        joblib.dump(obj, out.path(f"data.{compress}.joblib", f"joblib.dump compress={compress}"),
                    compress=(compress, 3))
    try:
        joblib.dump(obj, out.path("data.lz4.joblib", "joblib.dump compress=lz4"),
                    compress=("lz4", 3))
    except Exception as exc:
        print(f"lz4: {exc}")
    memory = joblib.Memory(str(out.path("cachedir", "joblib.Memory cache folder")), verbose=0)
    memory.cache(np.sqrt)(np.arange(4.0))
