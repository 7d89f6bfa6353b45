"""Landlock through ctypes: a worker may read files and list folders, nothing else.

No Python binding fits: `landlock` on PyPI is a development release without the network and
scope rights, `landlockpy`/`py-landlock` are months old with no users. The kernel interface
is three system calls and two structs, documented here (include/uapi/linux/landlock.h):

- system calls (the unified numbers: the same on x86_64 and aarch64):
  `landlock_create_ruleset` 444, `landlock_add_rule` 445, `landlock_restrict_self` 446;
- `struct landlock_ruleset_attr { __u64 handled_access_fs; __u64 handled_access_net;
  __u64 scoped; }` (the last two fields from ABI 4 and 6; an older kernel is given a shorter
  size);
- `struct landlock_path_beneath_attr { __u64 allowed_access; __s32 parent_fd; }`, packed
  (12 bytes).

The policy handles every right the running kernel knows and grants only READ_FILE and
READ_DIR beneath `/`: no write, truncate, remove, rename, make, link, execute or device
ioctl anywhere; with ABI 4 no TCP bind or connect (no rule grants a port); with ABI 6
signals and abstract unix sockets are scoped to the worker's own domain. Each worker calls
`restrict_self` after fork, so two workers are two sibling domains: neither can signal or
ptrace the other, nor the coordinator (Landlock forbids ptrace of a process outside the
caller's domain since ABI 1, which also covers `/proc/PID/mem`).
"""

from __future__ import annotations

import ctypes
import os

SYS_CREATE_RULESET = 444
SYS_ADD_RULE = 445
SYS_RESTRICT_SELF = 446
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1

# Filesystem rights, by the ABI that introduced them.
FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_ABI1 = (1 << 13) - 1  # EXECUTE .. MAKE_SYM (remove, make char/dir/reg/sock/fifo/block/sym)
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
FS_IOCTL_DEV = 1 << 15  # ABI 5
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6

READ_ONLY = FS_READ_FILE | FS_READ_DIR


class RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def abi_version(libc: ctypes.CDLL | None = None) -> int:
    """The kernel's Landlock ABI (0: not built in or disabled at boot)."""
    libc = libc or _libc()
    version = libc.syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0),
                           ctypes.c_uint32(CREATE_RULESET_VERSION))
    return max(0, int(version))


def handled(abi: int) -> tuple[int, int, int]:
    """(fs rights, net rights, scopes) that ABI `abi` knows: all of them are handled."""
    fs = FS_ABI1
    if abi >= 2:
        fs |= FS_REFER
    if abi >= 3:
        fs |= FS_TRUNCATE
    if abi >= 5:
        fs |= FS_IOCTL_DEV
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    return fs, net, scoped


def restrict_read_only(libc: ctypes.CDLL | None = None) -> str:
    """Confine the calling thread (and its future children) for good. Returns what was
    applied ("abi 7: ..."); raises OSError when the kernel refuses."""
    libc = libc or _libc()
    abi = abi_version(libc)
    if abi < 1:
        raise OSError(ctypes.get_errno() or 38, "Landlock is not supported by this kernel")
    fs, net, scoped = handled(abi)
    attr = RulesetAttr(fs, net, scoped)
    size = 8 if abi < 4 else 16 if abi < 6 else ctypes.sizeof(attr)
    ruleset = libc.syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size),
                           ctypes.c_uint32(0))
    if ruleset < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"landlock_create_ruleset: {os.strerror(errno)}")
    try:
        root = os.open("/", os.O_PATH | os.O_CLOEXEC)
        try:
            rule = PathBeneathAttr(READ_ONLY, root)
            if libc.syscall(SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(RULE_PATH_BENEATH),
                            ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
                errno = ctypes.get_errno()
                raise OSError(errno, f"landlock_add_rule: {os.strerror(errno)}")
        finally:
            os.close(root)
        if libc.syscall(SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"landlock_restrict_self: {os.strerror(errno)}")
    finally:
        os.close(ruleset)
    parts = ["read-only files"]
    if net:
        parts.append("no tcp")
    if scoped:
        parts.append("signals and abstract sockets scoped")
    return f"abi {abi}: " + ", ".join(parts)
