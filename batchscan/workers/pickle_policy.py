"""The pickle import policy: which globals are dangerous, which are known-safe, and why.

This module is data plus one classifier. The opcode walker (`workers/pickle.py`) resolves every
import exactly as CPython's unpickler would and asks `classify(module, name)`; nothing else in
the code base decides whether a global is acceptable.

Verdicts
- `DENY`   -> ERROR: the callable runs processes or code, imports by name, touches files or the
             network, loads native code, loads a second-stage payload, or is a known gadget
             (picklescan/modelscan/fickling advisories, attacks.md section 2).
- `ALLOW`  -> no finding: globals that ordinary checkpoints use (torch rebuild helpers and
             storages, numpy reconstruction, collections, datetime, common sklearn/scipy/xgboost
             classes...), vetted because calling them with attacker-chosen arguments only builds
             data.
- `UNKNOWN`-> WARNING when it is *called* and looks like a function, INFO when it is a class
             that is only constructed or a global that is only referenced. Measured on the benign
             corpus: user model classes (`__main__.Net`, `models.yolo.Model`) are constructed by
             every full-module checkpoint, so flagging class construction at WARNING gave a
             false-positive rate no user accepts; calling an unknown *function* is rare in benign
             files and common in attacks.

Matching rules (independent of what is installed on the scanning machine):
- Module names match themselves and their submodules: `os` covers `os.path`; `asyncio` covers
  `asyncio.unix_events` (CVE-2025-10157 was a parent wildcard that did not apply to children).
- A dotted *name* (protocol >= 4 resolves `pathlib` + `os.system` by attribute access) is checked
  component by component: an attribute that names a dangerous module (`os`, `sys`, `builtins`...)
  or an introspection dunder (`__globals__`, `__builtins__`, `__subclasses__`...) is DENY.
- Python 2 names are mapped through the stdlib `_compat_pickle` tables (`__builtin__` ->
  `builtins`, `copy_reg` -> `copyreg`) the way the unpickler maps them under protocol < 3.
"""

from __future__ import annotations

import _compat_pickle
import enum
from dataclasses import dataclass


class Verdict(enum.Enum):
    DENY = "deny"
    ALLOW = "allow"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Classification:
    verdict: Verdict
    reason: str
    loader: bool = False  # a second-stage loader: its bytes/str argument is scanned as a pickle
    code: bool = False  # rebuilds a function or class from pickled code: runs when *called*


_ALL = "*"

# --- Deny-list ---------------------------------------------------------------------------
# Whole modules (and their submodules): every global in them is dangerous on load.
DANGEROUS_MODULES: dict[str, str] = {
    # processes and shells
    "os": "process and file-system access",
    "posix": "process and file-system access",
    "nt": "process and file-system access",
    "subprocess": "runs processes",
    "_posixsubprocess": "runs processes",
    "pty": "spawns a shell",
    "pexpect": "spawns processes",
    "commands": "runs shell commands",
    "popen2": "runs shell commands",
    "platform": "runs processes (platform._syscmd_*)",
    "multiprocessing": "spawns processes",
    "_winapi": "native process control",
    "asyncio": "spawns processes and opens connections",
    "signal": "process control",
    "_signal": "process control",
    "sys": "interpreter internals (sys.modules override, exit, settrace)",
    "threading": "runs callables in threads",
    "_thread": "runs callables in threads",
    "concurrent": "runs callables in executors",
    # code evaluation, compilation and dynamic import
    "runpy": "runs modules as code",
    "code": "evaluates code",
    "codeop": "compiles code",
    "compileall": "compiles and writes code",
    "py_compile": "compiles and writes code",
    "importlib": "imports modules by name",
    "imp": "imports modules by name",
    "zipimport": "imports code from archives",
    "pkgutil": "resolves names to callables",
    "marshal": "builds code objects",
    "types": "builds functions and code objects",
    "ctypes": "loads native code",
    "_ctypes": "loads native code",
    "cffi": "loads native code",
    "_interpreters": "runs code in subinterpreters",
    "_xxsubinterpreters": "runs code in subinterpreters",
    "interpreters": "runs code in subinterpreters",
    "_pyrepl": "interactive console and pagers that run commands",
    "rlcompleter": "evaluates expressions",
    "inspect": "introspection reaching frames and globals",
    "gc": "introspection reaching every object",
    "ast": "compiles code",
    # debuggers, profilers and test harnesses that execute code
    "pdb": "debugger that runs code",
    "bdb": "debugger that runs code",
    "trace": "runs code under tracing",
    "profile": "runs code under a profiler",
    "cProfile": "runs code under a profiler",
    "_lsprof": "runs code under a profiler",
    "timeit": "evaluates code strings",
    "doctest": "runs code from docstrings",
    "unittest": "runs code (unittest.mock.patch and loaders)",
    "test": "CPython test helpers that run interpreters",
    "idlelib": "IDE internals that run code",
    "lib2to3": "parser internals that load pickles and evaluate",
    "pydoc": "pagers that run shell commands",
    "webbrowser": "runs a browser command",
    "cmd": "interactive command loops",
    "turtledemo": "runs demo code",
    # pickling machinery: second-stage loaders
    "pickle": "loads a second-stage pickle",
    "_pickle": "loads a second-stage pickle",
    "pickletools": "pickle internals",
    "cloudpickle": "rebuilds functions from code objects",
    "dill": "rebuilds functions from code objects",
    "shelve": "loads pickles from disk",
    "copyreg": "pickle extension registry",  # allow-list re-admits the reconstructors
    "joblib": "loads a second-stage pickle",  # allow-list re-admits the numpy wrappers
    # package installation
    "pip": "installs packages",
    "ensurepip": "installs packages",
    "venv": "creates environments and runs pip",
    "distutils": "builds, writes and runs code",
    "setuptools": "builds and runs code",
    "site": "adds import paths",
    # files
    "shutil": "copies and deletes files",
    "tempfile": "creates files",
    "fileinput": "opens and rewrites files",
    "filecmp": "reads files",
    "glob": "lists files",
    "io": "opens files",
    "_io": "opens files",
    "bz2": "opens files",
    "gzip": "opens files",
    "lzma": "opens files",
    "zipfile": "opens and extracts archives",
    "tarfile": "opens and extracts archives",
    "mmap": "maps files",
    "sqlite3": "opens databases",
    "dbm": "opens databases",
    "ntpath": "path helpers reaching os",
    "posixpath": "path helpers reaching os",
    "genericpath": "path helpers reaching os",
    "syslog": "writes to the system log",
    "logging": "creates file and network handlers, resolves names",
    # network
    "socket": "opens network connections",
    "_socket": "opens network connections",
    "ssl": "opens network connections",
    "select": "network multiplexing",
    "selectors": "network multiplexing",
    "socketserver": "opens network servers",
    "http": "opens network connections",
    "httplib": "opens network connections",
    "urllib": "fetches URLs",
    "urllib2": "fetches URLs",
    "requests": "fetches URLs",
    "httpx": "fetches URLs",
    "aiohttp": "fetches URLs",
    "urllib3": "fetches URLs",
    "ftplib": "opens network connections",
    "smtplib": "opens network connections",
    "imaplib": "opens network connections and runs commands",
    "poplib": "opens network connections",
    "nntplib": "opens network connections",
    "telnetlib": "opens network connections",
    "xmlrpc": "remote procedure calls",
    "wsgiref": "opens network servers",
    "paramiko": "opens SSH connections",
    "_osx_support": "runs shell commands",
    "_aix_support": "runs shell commands",
    "uuid": "runs commands (uuid._get_command_stdout)",
    "ensurepip._bundled": "installs packages",
    # Tk() runs `~/.<className>.py` (exec) and `.tcl` profiles on init; Tcl evaluates code.
    "tkinter": "Tk() executes profile files; Tcl evaluates code",
    "_tkinter": "Tcl evaluates code",
}

# Individual dangerous callables inside modules that are otherwise allowed or unknown.
DANGEROUS_CALLABLES: dict[str, dict[str, str]] = {
    "builtins": {
        "eval": "evaluates code",
        "exec": "executes code",
        "compile": "compiles code",
        "open": "opens files",
        "__import__": "imports modules by name",
        "getattr": "reaches arbitrary attributes",
        "setattr": "sets arbitrary attributes",
        "delattr": "deletes attributes",
        "globals": "reaches module globals",
        "locals": "reaches frame locals",
        "vars": "reaches module namespaces",
        "breakpoint": "starts a debugger",
        "input": "reads the terminal",
        "help": "runs a pager",
        "exit": "exits the interpreter",
        "quit": "exits the interpreter",
        "apply": "calls arbitrary callables",
        "execfile": "executes files",
        "reload": "reloads modules",
        "file": "opens files",
        "map": "calls a callable lazily",
        "filter": "calls a callable lazily",
    },
    "operator": {
        "attrgetter": "reaches arbitrary attributes",
        "methodcaller": "calls arbitrary methods",
        "itemgetter": "reaches arbitrary items",
        "call": "calls arbitrary callables",
        "getitem": "reaches namespace items",
        "setitem": "mutates objects",
        "delitem": "mutates objects",
    },
    "_operator": {
        "attrgetter": "reaches arbitrary attributes",
        "methodcaller": "calls arbitrary methods",
        "itemgetter": "reaches arbitrary items",
        "call": "calls arbitrary callables",
        "getitem": "reaches namespace items",
        "setitem": "mutates objects",
        "delitem": "mutates objects",
    },
    "codecs": {
        "open": "opens files",
        "EncodedFile": "opens files",
        "StreamReaderWriter": "wraps files",
        "StreamRecoder": "wraps files",
    },
    "pathlib": {
        f"{cls}.{method}": "reads, writes or deletes files"
        for cls in ("Path", "PosixPath", "WindowsPath")
        for method in (
            "write_text",
            "write_bytes",
            "read_text",
            "read_bytes",
            "open",
            "unlink",
            "rmdir",
            "mkdir",
            "touch",
            "rename",
            "replace",
            "symlink_to",
            "hardlink_to",
            "chmod",
            "iterdir",
            "glob",
            "rglob",
        )
    },
    "itertools": {"starmap": "calls arbitrary callables lazily"},
    "weakref": {"finalize": "calls a callable at collection", "ref": "callbacks"},
    "atexit": {"register": "calls a callable at exit"},
    "numpy": {
        "load": "loads a second-stage pickle (allow_pickle)",
        "loads": "loads a second-stage pickle",
        "fromfile": "reads files",
        "save": "writes files",
        "savez": "writes files",
        "savetxt": "writes files",
        "tofile": "writes files",
        "memmap": "maps files",
        "loadtxt": "reads files and URLs",
        "genfromtxt": "reads files and URLs",
        "DataSource": "fetches URLs",
    },
    "numpy.lib.npyio": {"load": "loads a second-stage pickle", "NpzFile": "opens archives"},
    "numpy.lib.format": {"read_array": "loads a second-stage pickle"},
    "numpy.testing._private.utils": {"runstring": "executes code"},
    "numpy.testing": {"runstring": "executes code"},
    "numpy.f2py": {_ALL: "runs compilers and evaluates expressions"},
    "numpy.distutils": {_ALL: "runs compilers"},
    "torch": {
        "load": "loads a second-stage pickle",
        "save": "writes files",
        "from_file": "reads files",
        "classes": "loads native extensions",
        "ops": "loads native operators",
    },
    "torch.serialization": {
        "load": "loads a second-stage pickle",
        "_load": "loads a second-stage pickle",
        "_legacy_load": "loads a second-stage pickle",
        "save": "writes files",
    },
    "torch.storage": {"_load_from_bytes": "loads a second-stage pickle with weights_only=False"},
    "torch.hub": {_ALL: "downloads and runs repository code"},
    "torch.jit": {_ALL: "compiles and runs TorchScript"},
    "torch._inductor": {_ALL: "compiles and runs generated code"},
    "torch._dynamo": {_ALL: "evaluates guard code"},
    "torch.fx": {_ALL: "evaluates generated code"},
    "torch.utils.collect_env": {_ALL: "runs shell commands"},
    "torch.utils.bottleneck": {_ALL: "runs code under profilers"},
    "torch.utils.cpp_extension": {_ALL: "compiles and loads native code"},
    "torch.utils._config_module": {_ALL: "evaluates configuration code"},
    "torch.utils.data.datapipes.utils.decoder": {_ALL: "loads pickles and files"},
    "torch.utils.data.datapipes": {_ALL: "opens files and URLs"},
    "torch.package": {_ALL: "imports packaged code"},
    "torch.library": {_ALL: "registers native operators"},
    "torch._ops": {_ALL: "loads native operators"},
    "torch.cuda": {"_lazy_call": "calls callables"},
    "torch._utils": {"_import_dotted_name": "resolves names to callables"},
    "torch.distributed": {_ALL: "opens network connections and runs RPC"},
    "torch.multiprocessing": {_ALL: "spawns processes"},
    "pandas": {
        "read_pickle": "loads a second-stage pickle",
        "read_csv": "reads files and URLs",
        "read_json": "reads files and URLs",
        "read_html": "fetches URLs",
        "read_sql": "opens databases",
        "read_parquet": "reads files and URLs",
        "read_excel": "reads files and URLs",
        "eval": "evaluates expressions",
    },
    "pandas.io": {_ALL: "reads files and URLs"},
    "pandas.core.computation": {_ALL: "evaluates expressions"},
    "yaml": {
        "load": "unsafe YAML loading",
        "unsafe_load": "unsafe YAML loading",
        "full_load": "YAML loading with python tags",
        "load_all": "unsafe YAML loading",
        "unsafe_load_all": "unsafe YAML loading",
        "UnsafeLoader": "unsafe YAML loading",
        "Loader": "unsafe YAML loading",
        "FullLoader": "YAML loading with python tags",
    },
    "keras": {"models": "loads models", "saving": "loads models"},
    "keras.models": {"load_model": "loads models"},
    "keras.saving": {_ALL: "loads models"},
    "keras.utils": {"get_file": "downloads and extracts files"},
    "tensorflow": {"io": "file access", "py_function": "runs Python", "numpy_function": "runs"},
    "transformers": {"dynamic_module_utils": "runs remote code"},
    "transformers.dynamic_module_utils": {_ALL: "downloads and runs remote code"},
    "huggingface_hub": {_ALL: "downloads files"},
    "mlflow": {_ALL: "runs projects and loads models"},
    "jinja2": {_ALL: "renders templates that can run code"},
    "pyarrow.lib": {"OSFile": "opens files", "memory_map": "maps files",
                    "MemoryMappedFile": "maps files", "create_memory_map": "creates files",
                    "input_stream": "opens files", "output_stream": "opens files"},
    "pyarrow.fs": {_ALL: "opens local and remote file systems"},
    "pyarrow.parquet": {_ALL: "reads and writes files"},
    "pyarrow.csv": {_ALL: "reads and writes files"},
    "pyarrow.feather": {_ALL: "reads and writes files"},
    "pyarrow.dataset": {_ALL: "reads and writes files"},
    "pyarrow.orc": {_ALL: "reads and writes files"},
    "pyarrow.flight": {_ALL: "opens network connections"},
    "pyarrow.cffi": {_ALL: "loads native code"},
    "sklearn.utils._testing": {_ALL: "test helpers that run code"},
    "IPython": {_ALL: "interactive shell"},
    "fickling": {_ALL: "pickle tooling"},
    # sympify/parse_expr evaluate their string argument with eval().
    "sympy": {"sympify": "evaluates code (eval of its string argument)",
              "parse_expr": "evaluates code (eval of its string argument)"},
    "sympy.core.sympify": {"sympify": "evaluates code (eval of its string argument)"},
    "sympy.parsing.sympy_parser": {"parse_expr": "evaluates code (eval of its string argument)",
                                   "eval_expr": "evaluates code"},
}

# Python-level names whose presence anywhere in a dotted path means introspection escapes.
DANGEROUS_ATTRIBUTES = frozenset(
    {
        "__builtins__",
        "__globals__",
        "__subclasses__",
        "__dict__",
        "__getattribute__",
        "__getattr__",
        "__class__",
        "__base__",
        "__bases__",
        "__mro__",
        "__code__",
        "__closure__",
        "__func__",
        "__self__",
        "__module__",
        "__import__",
        "__loader__",
        "__spec__",
        "__reduce__",
        "__reduce_ex__",
        "__init_subclass__",
        "__setattr__",
        "__delattr__",
        "__call__",
        "__new__",
        "__init__",
        "__setstate__",
        "__getstate__",
        "__get__",
        "__set__",
        "__enter__",
        "__exit__",
        "f_globals",
        "f_locals",
        "f_builtins",
        "gi_frame",
        "tb_frame",
        "func_globals",
    }
)

# Names of loaders whose bytes/str argument is itself a pickle: scanned recursively.
SECOND_STAGE_LOADERS = frozenset(
    {
        ("pickle", "loads"),
        ("_pickle", "loads"),
        ("pickle", "_loads"),
        ("dill", "loads"),
        ("dill._dill", "loads"),
        ("cloudpickle", "loads"),
        ("torch.storage", "_load_from_bytes"),
        ("numpy", "loads"),
        ("numpy.core.numeric", "loads"),
        ("numpy._core.numeric", "loads"),
        ("joblib", "loads"),
    }
)

# --- Allow-list --------------------------------------------------------------------------
_TORCH_STORAGES = frozenset(
    {
        f"{kind}Storage"
        for kind in (
            "Float",
            "Double",
            "Half",
            "BFloat16",
            "Long",
            "Int",
            "Short",
            "Char",
            "Byte",
            "Bool",
            "ComplexFloat",
            "ComplexDouble",
            "QInt8",
            "QUInt8",
            "QInt32",
            "QUInt4x2",
            "QUInt2x4",
            "Untyped",
            "Typed",
        )
    }
)
_TORCH_DTYPES = frozenset(
    {
        "float32",
        "float64",
        "float16",
        "bfloat16",
        "int64",
        "int32",
        "int16",
        "int8",
        "uint8",
        "bool",
        "complex64",
        "complex128",
        "float",
        "double",
        "half",
        "long",
        "int",
        "short",
        "uint16",
        "uint32",
        "uint64",
        "float8_e4m3fn",
        "float8_e5m2",
        "device",
        "Size",
        "dtype",
        "layout",
        "memory_format",
        "strided",
        "sparse_coo",
        "contiguous_format",
        "channels_last",
        "preserve_format",
        "Tensor",
        "finfo",
        "iinfo",
        "Generator",
        "qscheme",
        "per_tensor_affine",
        "per_channel_affine",
    }
)

SAFE_GLOBALS: dict[str, frozenset[str]] = {
    # defaultdict's factory is itself an import and is judged on its own
    "collections": frozenset(
        {"OrderedDict", "Counter", "deque", "namedtuple", "ChainMap", "defaultdict"}
    ),
    # pure decoders: what they compute (names, nested pickles) is followed and judged
    "base64": frozenset(
        {"b64decode", "standard_b64decode", "urlsafe_b64decode", "b32decode", "b16decode",
         "a85decode", "b85decode", "decodebytes", "b64encode"}
    ),
    "binascii": frozenset({"a2b_base64", "unhexlify", "a2b_hex", "hexlify", "b2a_hex"}),
    "builtins": frozenset(
        {
            "set",
            "frozenset",
            "list",
            "dict",
            "tuple",
            "bytearray",
            "bytes",
            "str",
            "int",
            "float",
            "complex",
            "bool",
            "range",
            "slice",
            "len",
            "min",
            "max",
            "print",
            "Ellipsis",
            "NotImplemented",
            "reversed",
            "enumerate",
            "zip",
            "abs",
            "round",
            "sum",
            "all",
            "any",
            "sorted",
            "divmod",
            "pow",
            "hash",
            "iter",
            "next",
            "repr",
            "ascii",
            "ord",
            "chr",
            "hex",
            "oct",
            "bin",
            "format",
            "isinstance",
            "issubclass",
            "id",
            "callable",
        }
        | {  # exceptions are data classes
            "Exception",
            "BaseException",
            "ValueError",
            "KeyError",
            "TypeError",
            "RuntimeError",
            "IndexError",
            "AttributeError",
            "NotImplementedError",
            "StopIteration",
            "OSError",
            "AssertionError",
            "ArithmeticError",
            "ZeroDivisionError",
            "Warning",
            "UserWarning",
            "DeprecationWarning",
        }
    ),
    "copyreg": frozenset({"_reconstructor", "__newobj__", "__newobj_ex__", "_new_type"}),
    "copy_reg": frozenset({"_reconstructor"}),
    "codecs": frozenset({"encode", "decode"}),  # numpy byte payloads: encode(str, 'latin1')
    "_codecs": frozenset({"encode", "decode"}),
    "datetime": frozenset({"datetime", "date", "time", "timedelta", "timezone", "tzinfo"}),
    "decimal": frozenset({"Decimal", "Context"}),
    "fractions": frozenset({"Fraction"}),
    "pathlib": frozenset({"PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath", "Path"}),
    "argparse": frozenset({"Namespace"}),
    "enum": frozenset({"Enum", "IntEnum", "Flag", "IntFlag"}),
    "re": frozenset({"_compile", "compile"}),
    "array": frozenset({"array", "_array_reconstructor"}),
    "random": frozenset({"Random"}),
    "zoneinfo": frozenset({"ZoneInfo"}),
    # fastai's Learner.export pickles function signatures: data objects with inert
    # constructors (a name, a kind enum, a default, an annotation). The rest of `inspect`
    # (frames, getsource, getmembers, Signature.from_callable) stays denied.
    "inspect": frozenset({"Signature", "Parameter", "_ParameterKind", "_empty"}),
    # pandas 3 stores strings (and every string column name) as pyarrow arrays
    "pyarrow.lib": frozenset({"_restore_array", "type_for_alias", "py_buffer",
                              "_reconstruct_record_batch", "_reconstruct_table",
                              "ChunkedArray", "Table", "RecordBatch", "schema", "field",
                              "Schema", "Field", "DataType", "ListType", "StructType",
                              "DictionaryType", "TimestampType", "Decimal128Type"}),
    # torch.distributed.checkpoint's `.metadata` file: dataclasses describing shards
    "torch.distributed.checkpoint.metadata": frozenset(
        {"Metadata", "TensorStorageMetadata", "BytesStorageMetadata", "ChunkStorageMetadata",
         "TensorProperties", "MetadataIndex", "StorageMeta", "_MEM_FORMAT_ENCODING"}
    ),
    "torch.distributed.checkpoint.filesystem": frozenset({"_StorageInfo"}),
    "torch.distributed.checkpoint.planner": frozenset({"WriteItemType", "LoadItemType"}),
    # dill's numpy array rebuild: `f(*args)` then `__setstate__` (f is judged by the walker)
    "dill._dill": frozenset({"_create_array"}),
    # MLflow pyfunc: the base class of pickled python models, and signature type hints
    "mlflow.pyfunc.model": frozenset({"PythonModel"}),
    "mlflow.models.signature": frozenset({"_TypeHints"}),
    "numpy": frozenset(
        {
            "ndarray",
            "dtype",
            "matrix",
            "recarray",
            "record",
            "generic",
            "number",
            "bool_",
            "float16",
            "float32",
            "float64",
            "float128",
            "longdouble",
            "int8",
            "int16",
            "int32",
            "int64",
            "uint8",
            "uint16",
            "uint32",
            "uint64",
            "complex64",
            "complex128",
            "object_",
            "str_",
            "bytes_",
            "void",
            "datetime64",
            "timedelta64",
            "half",
            "single",
            "double",
            "intc",
            "intp",
            "uintp",
            "longlong",
            "ulonglong",
            "short",
            "ushort",
            "byte",
            "ubyte",
            "bool",
            "float_",
            "int_",
            "uint",
            "core",
            "_core",
        }
        # ufuncs and math helpers referenced by estimators (FunctionTransformer(np.log1p))
        | {
            "log", "log1p", "log2", "log10", "exp", "expm1", "sqrt", "square", "abs",
            "absolute", "tanh", "sin", "cos", "arctan", "clip", "maximum", "minimum",
            "mean", "median", "sum", "std", "var", "max", "min", "nan", "inf", "round",
            "sign", "floor", "ceil", "reciprocal", "negative", "power", "add", "subtract",
            "multiply", "divide", "true_divide", "arange", "array", "zeros", "ones", "empty",
        }
    ),
    "numpy.core.multiarray": frozenset({"_reconstruct", "scalar", "_frombuffer"}),
    "numpy._core.multiarray": frozenset({"_reconstruct", "scalar", "_frombuffer"}),
    "numpy.core.numeric": frozenset({"_frombuffer"}),
    "numpy._core.numeric": frozenset({"_frombuffer"}),
    "numpy.dtypes": frozenset({_ALL}),
    "numpy.ma.core": frozenset({"_mareconstruct", "MaskedArray"}),
    "numpy.random": frozenset({"RandomState", "Generator", "default_rng", "__RandomState_ctor"}),
    "numpy.random._pickle": frozenset({_ALL}),
    "numpy.random.mtrand": frozenset({"RandomState"}),
    "numpy.random._mt19937": frozenset({"MT19937"}),
    "numpy.random._pcg64": frozenset({"PCG64", "PCG64DXSM"}),
    "numpy.random._philox": frozenset({"Philox"}),
    "numpy.random._sfc64": frozenset({"SFC64"}),
    "numpy.random.bit_generator": frozenset({"SeedSequence", "BitGenerator"}),
    "torch": frozenset(_TORCH_STORAGES | _TORCH_DTYPES),
    "torch._utils": frozenset(
        {
            "_rebuild_tensor",
            "_rebuild_tensor_v2",
            "_rebuild_tensor_v3",
            "_rebuild_parameter",
            "_rebuild_parameter_with_state",
            "_rebuild_sparse_tensor",
            "_rebuild_sparse_csr_tensor",
            "_rebuild_device_tensor_from_numpy",
            "_rebuild_meta_tensor_no_storage",
            "_rebuild_wrapper_subclass",
            "_rebuild_qtensor",
            "_rebuild_nested_tensor",
            "_rebuild_xla_tensor",
            "_rebuild_mps_tensor",
            "_rebuild_from_type",
            "_rebuild_from_type_v2",
        }
    ),
    "torch.storage": frozenset({"TypedStorage", "UntypedStorage", "_TypedStorage"}),
    "torch._tensor": frozenset({"_rebuild_from_type", "_rebuild_from_type_v2", "Tensor"}),
    "torch.nn.parameter": frozenset({"Parameter", "UninitializedParameter", "Buffer"}),
    "torch.nn.modules": frozenset({_ALL}),
    "torch.nn.utils.parametrize": frozenset({"ParametrizationList"}),
    "torch.nn.utils.weight_norm": frozenset({"WeightNorm"}),
    "torch.nn.utils.spectral_norm": frozenset({"SpectralNorm"}),
    "torch.optim": frozenset({_ALL}),
    "torch.optim.lr_scheduler": frozenset({_ALL}),
    "torch.distributions": frozenset({_ALL}),
    "torch.quantization": frozenset({_ALL}),
    "torch.ao.quantization": frozenset({_ALL}),
    "torch.cuda.amp.grad_scaler": frozenset({"GradScaler"}),
    "torch.amp.grad_scaler": frozenset({"GradScaler"}),
    "torch.serialization": frozenset({"_get_layout"}),
    "torch.types": frozenset({_ALL}),
    "sklearn": frozenset({_ALL}),
    "scipy.sparse": frozenset({_ALL}),
    "scipy.sparse._csr": frozenset({_ALL}),
    "scipy.sparse._csc": frozenset({_ALL}),
    "scipy.sparse._coo": frozenset({_ALL}),
    "scipy.stats": frozenset({_ALL}),
    "scipy.stats._distn_infrastructure": frozenset({_ALL}),
    "xgboost": frozenset({_ALL}),
    "xgboost.core": frozenset({"Booster"}),
    "xgboost.sklearn": frozenset({_ALL}),
    "lightgbm": frozenset({_ALL}),
    "lightgbm.sklearn": frozenset({_ALL}),
    "lightgbm.basic": frozenset({"Booster"}),
    "catboost": frozenset({_ALL}),
    "pandas": frozenset(
        {"DataFrame", "Series", "Index", "RangeIndex", "MultiIndex", "DatetimeIndex",
         "Categorical", "CategoricalDtype", "StringDtype", "DatetimeTZDtype", "Timestamp",
         "Timedelta", "Period", "Interval", "NaT", "NA"}
    ),
    "pandas.arrays": frozenset({_ALL}),
    "pandas.core.frame": frozenset({"DataFrame"}),
    "pandas.core.series": frozenset({"Series"}),
    "pandas.core.indexes": frozenset({_ALL}),
    "pandas.core.internals": frozenset({_ALL}),
    "pandas.core.arrays": frozenset({_ALL}),
    "pandas.core.dtypes": frozenset({_ALL}),
    "pandas._libs": frozenset({_ALL}),
    "pandas.core.internals.managers": frozenset({_ALL}),
    "pandas.core.internals.blocks": frozenset({_ALL}),
    "pandas.core.indexes.base": frozenset({"_new_Index", "Index"}),
    "joblib.numpy_pickle": frozenset({"NumpyArrayWrapper", "NDArrayWrapper", "ZNDArrayWrapper"}),
    "tokenizers": frozenset({_ALL}),
    "transformers.tokenization_utils_base": frozenset({"BatchEncoding"}),
    "transformers.trainer_utils": frozenset({_ALL}),
    "transformers.training_args": frozenset({"TrainingArguments"}),
    "transformers.configuration_utils": frozenset({"PretrainedConfig"}),
    "accelerate.utils.dataclasses": frozenset({_ALL}),
    "omegaconf": frozenset({"DictConfig", "ListConfig", "OmegaConf"}),
    "omegaconf.dictconfig": frozenset({"DictConfig"}),
    "omegaconf.listconfig": frozenset({"ListConfig"}),
    "omegaconf.nodes": frozenset({_ALL}),
    "omegaconf.base": frozenset({_ALL}),
    "typing": frozenset({"Any"}),
    # TorchScript archives: script classes are data; their code/ is scanned separately
    "__torch__": frozenset({_ALL}),
    "torch.jit._pickle": frozenset({"build_intlist", "build_tensorlist", "build_doublelist",
                                    "build_boollist", "build_tensor_from_id",
                                    "restore_type_tag"}),
    "io": frozenset({"BytesIO", "StringIO"}),
    "_io": frozenset({"BytesIO", "StringIO"}),
    "logging": frozenset({"getLogger", "Logger", "RootLogger"}),
    "types": frozenset({"SimpleNamespace"}),
    "uuid": frozenset({"UUID", "SafeUUID"}),

}

# Attributes reached with `getattr(<allowed class>, name)` (protocol 2-3 spell methods that
# way; protocol 4+ as a dotted name) that only build data. Method descriptors of the builtin
# data types that neither mutate nor reach attributes (`str.format` reads attributes: left out).
_PURE_STR_METHODS = frozenset(
    {"split", "rsplit", "splitlines", "strip", "lstrip", "rstrip", "lower", "upper", "casefold",
     "title", "capitalize", "swapcase", "replace", "join", "startswith", "endswith", "find",
     "rfind", "index", "rindex", "count", "partition", "rpartition", "isdigit", "isalpha",
     "isalnum", "isspace", "isupper", "islower", "isnumeric", "isdecimal", "isidentifier",
     "zfill", "center", "ljust", "rjust", "expandtabs", "encode", "decode", "hex", "fromhex",
     "translate", "maketrans", "removeprefix", "removesuffix"}
)
SAFE_ATTRIBUTES: dict[str, frozenset[str]] = {
    "builtins": frozenset(
        f"{owner}.{method}" for owner in ("str", "bytes", "bytearray") for method in
        _PURE_STR_METHODS
    ) | frozenset(
        {"dict.fromkeys", "dict.get", "dict.keys", "dict.values", "dict.items", "dict.copy",
         "list.copy", "list.index", "list.count", "tuple.index", "tuple.count",
         "int.from_bytes", "int.to_bytes", "float.fromhex", "float.hex", "set.copy",
         "set.union", "set.intersection", "frozenset.union", "frozenset.intersection"}
    ),
    # tz-aware timestamps: the key names a zone of the system tz database (validated, no paths)
    "zoneinfo": frozenset({"ZoneInfo._unpickle", "ZoneInfo.no_cache"}),
}

# Known re-exports of dangerous objects under harmless-looking modules (read from the
# libraries' sources, never imported): a global is judged by what it resolves to.
REEXPORTS: dict[tuple[str, str], tuple[str, str]] = {
    ("sklearn.utils._testing", "check_output"): ("subprocess", "check_output"),
    ("sklearn.datasets._base", "environ"): ("os", "environ"),
    ("sklearn.datasets._base", "urlretrieve"): ("urllib.request", "urlretrieve"),
    ("sklearn.datasets._base", "makedirs"): ("os", "makedirs"),
    ("sklearn.datasets._openml", "urlopen"): ("urllib.request", "urlopen"),
    ("sklearn.datasets._openml", "Request"): ("urllib.request", "Request"),
    ("sklearn.datasets._lfw", "remove"): ("os", "remove"),
    ("sklearn.datasets._rcv1", "remove"): ("os", "remove"),
    ("sklearn.utils.discovery", "import_module"): ("importlib", "import_module"),
    ("numpy.distutils.fcompiler.gnu", "Popen"): ("subprocess", "Popen"),
    ("scipy._lib._tmpdirs", "rmtree"): ("shutil", "rmtree"),
    ("scipy._lib.deprecation", "import_module"): ("importlib", "import_module"),
    ("torch.hub", "urlopen"): ("urllib.request", "urlopen"),
    ("joblib._memmapping_reducer", "loads"): ("pickle", "loads"),
    # Module-level `from <denied module> import <name>` inside packages the allow-list admits
    # by wildcard (sklearn, lightgbm, catboost, xgboost, torch.optim/ao), read from their
    # sources: `sklearn.datasets._olivetti_faces.remove` deletes a file on load.
    **{(module, name): ("os", name) for module, name in (
        ("sklearn.datasets._olivetti_faces", "remove"),
        ("sklearn.datasets._species_distributions", "remove"),
        ("sklearn.datasets._california_housing", "remove"),
        ("sklearn.datasets._rcv1", "makedirs"), ("sklearn.datasets._lfw", "makedirs"),
        ("sklearn.datasets._lfw", "listdir"), ("sklearn.datasets._base", "listdir"))},
    **{(module, name): ("tempfile", name) for module, name in (
        ("sklearn.datasets._base", "NamedTemporaryFile"),
        ("lightgbm.basic", "NamedTemporaryFile"),
        ("sklearn.datasets._covtype", "TemporaryDirectory"),
        ("sklearn.datasets._openml", "TemporaryDirectory"))},
    **{(f"sklearn.datasets.{module}", "GzipFile"): ("gzip", "GzipFile")
       for module in ("_covtype", "_kddcup99", "_rcv1")},
    ("sklearn.datasets._lfw", "Memory"): ("joblib", "Memory"),
    ("sklearn.datasets._base", "resources"): ("importlib", "resources"),
    **{("sklearn.callback._transport", name): ("multiprocessing.connection", name)
       for name in ("Client", "Listener", "Connection")},
    **{(module, "Thread"): ("threading", "Thread") for module in (
        "sklearn.callback._progressbar", "sklearn.callback._transport",
        "catboost.widget.ipythonwidget", "xgboost.dask", "xgboost.federated",
        "xgboost.spark.utils")},
    ("catboost.widget.ipythonwidget", "Event"): ("threading", "Event"),
    ("xgboost.sklearn", "ThreadPoolExecutor"): ("concurrent.futures", "ThreadPoolExecutor"),
    ("catboost.hnsw.hnsw", "load_dynamic"): ("imp", "load_dynamic"),
    **{(module, "itemgetter"): ("operator", "itemgetter") for module in (
        "catboost.core", "sklearn.feature_extraction._dict_vectorizer",
        "sklearn.feature_extraction.text", "sklearn.gaussian_process._gpc",
        "sklearn.gaussian_process._gpr", "sklearn.utils.discovery")},
    **{(module, "attrgetter"): ("operator", "attrgetter") for module in (
        "lightgbm.engine", "sklearn.feature_selection._base")},
    ("sklearn.ensemble._hist_gradient_boosting.grower", "time"): ("timeit", "default_timer"),
    ("sklearn.utils._available_if", "MethodType"): ("types", "MethodType"),
    ("torch.ao.quantization.fx._decomposed", "Library"): ("torch.library", "Library"),
    ("torch.ao.quantization.fx._decomposed", "impl"): ("torch.library", "impl"),
    ("torch.ao.quantization.quantize_jit", "wrap_cpp_module"): ("torch.jit._recursive",
                                                               "wrap_cpp_module"),
    ("torch.optim.lr_scheduler", "ref"): ("weakref", "ref"),
}
# Names so specific to one dangerous object that a global of that name under another module
# is that object re-exported (`from subprocess import check_output`).
DISTINCTIVE_DANGEROUS_NAMES: dict[str, str] = {
    "check_output": "subprocess",
    "check_call": "subprocess",
    "getoutput": "subprocess",
    "getstatusoutput": "subprocess",
    "Popen": "subprocess",
    "urlopen": "urllib.request",
    "urlretrieve": "urllib.request",
    "environ": "os",
    "posix_spawn": "os",
    "posix_spawnp": "os",
    "rmtree": "shutil",
    "makedirs": "os",
    **dict.fromkeys(("NamedTemporaryFile", "TemporaryDirectory", "SpooledTemporaryFile",
                     "mkstemp", "mkdtemp"), "tempfile"),
    "load_dynamic": "imp",
    "import_module": "importlib",
    "run_path": "runpy",
    "run_module": "runpy",
    # the rest of the process family (python_source.py's table lists the same names)
    **dict.fromkeys(("popen", "execl", "execle", "execlp", "execlpe", "execv", "execve",
                     "execvp", "execvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv",
                     "spawnve", "spawnvp", "spawnvpe", "startfile"), "os"),
    "create_subprocess_exec": "asyncio",
    "create_subprocess_shell": "asyncio",
}


# Helpers that rebuild functions, classes, cells and code objects from pickled code
# (cloudpickle, dill). Nothing they build runs on load; it runs when the model calls it:
# WARNING by the severity contract. Calling what they built while loading is ERROR (the
# walker flags that call), and so is every helper that imports, evaluates or opens
# (`subimport`, `_import_module`, `_eval_repr`, `_create_filehandle`, `_get_attr`).
CODE_REBUILDERS: dict[str, frozenset[str]] = {
    module: frozenset(
        {"_make_function", "_make_empty_cell", "_make_cell", "_function_setstate",
         "_class_setstate", "_make_skeleton_class", "_make_skeleton_enum", "_enum_setstate",
         "_make_dict_keys", "_make_dict_values", "_make_dict_items",
         "_get_dataclass_field_type_sentinel", "_make__new__factory"}
    )
    for module in ("cloudpickle.cloudpickle", "cloudpickle.cloudpickle_fast")
} | {
    "dill._dill": frozenset({"_create_function", "_create_code", "_create_cell",
                             "_create_type", "_create_namedtuple"}),
}
# `_builtin_type(name)` / `_load_type(name)` return a type by name (`getattr(types, name)`,
# which includes `types.new_class`); only these names are accepted. Data types build data;
# the code types build code objects and functions (the CODE_REBUILDERS tier).
DATA_TYPE_NAMES = frozenset(
    {"bytes", "bytearray", "complex", "int", "float", "str", "list", "dict", "tuple", "set",
     "frozenset", "slice", "range", "bool", "NoneType", "EllipsisType", "NotImplementedType",
     "MappingProxyType", "SimpleNamespace", "ClassType", "TypeType", "ObjectType"}
)
CODE_TYPE_NAMES = frozenset(
    {"CodeType", "FunctionType", "LambdaType", "CellType", "MethodType"}
)
TYPE_LOADERS = frozenset(
    {("cloudpickle.cloudpickle", "_builtin_type"), ("cloudpickle.cloudpickle_fast",
                                                    "_builtin_type"),
     ("dill._dill", "_load_type")}
)
# Class attributes that run while a pickle loads, when a rebuilt class defines them.
LOAD_TIME_HOOKS = frozenset(
    {"__setstate__", "__reduce__", "__reduce_ex__", "__new__", "__init_subclass__",
     "__set_name__", "__class_getitem__", "__getattr__", "__getattribute__", "__setattr__",
     "__del__", "__hash__", "__eq__", "__setitem__", "__set__", "__get__", "__index__",
     "__instancecheck__", "__subclasscheck__", "__mro_entries__", "__prepare__"}
)


def _normalise(module: str, name: str) -> tuple[str, str]:
    """Map Python 2 names the way the unpickler does under protocol < 3 (`fix_imports`)."""
    pair = _compat_pickle.NAME_MAPPING.get((module, name))
    if pair is not None:
        return pair
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _module_chain(module: str) -> list[str]:
    """`a.b.c` -> [`a.b.c`, `a.b`, `a`]: a module matches its own entries and its parents'."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


def _deny_match(module: str, name: str) -> tuple[str, bool] | None:
    """The deny entry matching `module.name`: (reason, names this very object)."""
    head = name.split(".", 1)[0]
    for candidate in _module_chain(module):
        reason = DANGEROUS_MODULES.get(candidate)
        if reason is not None:
            return reason, False
        callables = DANGEROUS_CALLABLES.get(candidate)
        if callables is not None:
            if candidate == module and (head in callables or name in callables):
                return callables.get(name) or callables[head], True
            if _ALL in callables:
                return callables[_ALL], False
    return None


def _deny_reason(module: str, name: str) -> str | None:
    """Deny beats allow. The one exception is narrower than any deny entry: a name the
    allow-list spells out (module and name, no wildcard) inside a module that is denied as a
    whole (`copyreg._reconstructor`, `logging.getLogger`, a dataclass of
    `torch.distributed.checkpoint.metadata`). A wildcard allow (`sklearn.*`) never outranks a
    deny entry, and a deny entry naming the object itself is never outranked."""
    reexport = resolve_reexport(module, name)
    if reexport is not None:
        target = _deny_match(*reexport)
        if target is not None:
            return f"re-export of `{reexport[0]}.{reexport[1]}`: {target[0]}"
    match = _deny_match(module, name)
    if match is None:
        return None
    reason, exact = match
    if not exact and _allowed_by_name(module, name):
        return None
    return reason


def _allowed_by_name(module: str, name: str) -> bool:
    """Spelled out on the allow-list: the module's own entry lists this name (no wildcard)."""
    if name in SAFE_ATTRIBUTES.get(module, frozenset()):
        return True
    names = SAFE_GLOBALS.get(module)
    return names is not None and "." not in name and name in names


def _allowed_exact(module: str, name: str) -> bool:
    if name in SAFE_ATTRIBUTES.get(module, frozenset()):
        return True
    head = name.split(".", 1)[0]
    for candidate in _module_chain(module):
        names = SAFE_GLOBALS.get(candidate)
        if names is None:
            continue
        if candidate == module and head in names:
            return "." not in name
        if _ALL in names:
            return "." not in name or name.split(".")[-1][:1].isupper()
    return False


def resolve_reexport(module: str, name: str) -> tuple[str, str] | None:
    """What a global is where its name is known: `sklearn.utils._testing.check_output` is
    `subprocess.check_output`. A static table (no imports), plus the names of dangerous
    objects distinctive enough to be judged as themselves under any module."""
    known = REEXPORTS.get((module, name))
    if known is not None:
        return known
    origin = DISTINCTIVE_DANGEROUS_NAMES.get(name)
    if origin is not None and module != origin and not module.startswith(origin + "."):
        return origin, name
    return None


def module_namespace(module: str, name: str) -> bool:
    """`find_class(module, '__dict__')` of a module the deny-list does not name: the globals
    dill hands to a rebuilt function. Denied for any other use (`dict.get(ns, 'system')`)."""
    module, name = _normalise(module, name)
    return name == "__dict__" and _deny_match(module, name) is None


_CYTHON_RECONSTRUCTOR = "__pyx_unpickle_"


def classify(module: str, name: str) -> Classification:
    """Decide one import. Pure and deterministic: no imports, no installed-package lookups."""
    module, name = _normalise(module, name)
    if name.startswith(_CYTHON_RECONSTRUCTOR) and "." not in name:
        # Cython's generated `__pyx_unpickle_Foo` rebuilds class `Foo` of the same module.
        return classify(module, name[len(_CYTHON_RECONSTRUCTOR) :])
    if module.split(".", 1)[0] in ("__builtin__", "exceptions"):
        module = "builtins"
    if name in CODE_REBUILDERS.get(module, frozenset()):
        return Classification(Verdict.DENY, "rebuilds functions or classes from pickled code "
                              "(they run when called)", code=True)
    reason = _deny_reason(module, name)
    if reason is not None:
        return Classification(Verdict.DENY, reason, loader=(module, name) in SECOND_STAGE_LOADERS)
    pieces = name.split(".")
    # An attribute chain can leave the module: `pathlib` + `os.system`, `x` + `f.__globals__`.
    for piece in pieces:
        if piece in DANGEROUS_ATTRIBUTES:
            return Classification(Verdict.DENY, f"reaches `{piece}` (introspection escape)")
    if len(pieces) > 1:
        for i in range(len(pieces) - 1):
            # `sklearn` + `datasets._lfw.Memory` reaches the submodule `sklearn.datasets._lfw`
            # by attribute access: judged as that module's global (its re-export table).
            reason = _deny_reason(f"{module}.{'.'.join(pieces[: i + 1])}",
                                  ".".join(pieces[i + 1 :]))
            if reason is not None:
                return Classification(Verdict.DENY, reason)
            inner_module = pieces[i]
            reason = _deny_reason(inner_module, ".".join(pieces[i + 1 :]))
            if reason is not None or inner_module in DANGEROUS_MODULES:
                why = reason or DANGEROUS_MODULES[inner_module]
                return Classification(Verdict.DENY, f"reaches module `{inner_module}`: {why}")
    if _allowed_exact(module, name):
        return Classification(Verdict.ALLOW, "known safe")
    return Classification(Verdict.UNKNOWN, "not on the allow-list")


def looks_like_class(name: str) -> bool:
    """CamelCase last component: the naming convention of classes (`Net`, `StandardScaler`)."""
    last = name.rsplit(".", 1)[-1].removeprefix(_CYTHON_RECONSTRUCTOR)
    return last[:1].isupper() and not last.isupper()
