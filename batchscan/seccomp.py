"""A seccomp deny-list for workers, as a classic-BPF program built here (no libseccomp).

`pyseccomp` (ctypes over libseccomp, last release 2021) would add a shared library that is not
always installed, for what is a list of comparisons; so the program is assembled by hand.

Kernel structs (include/uapi/linux/seccomp.h, filter.h):
- `struct seccomp_data { int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]; }`:
  offsets nr 0, arch 4, args[i] 16 + 8 i (low 32 bits first: x86_64 and aarch64 are little
  endian);
- `struct sock_filter { __u16 code; __u8 jt; __u8 jf; __u32 k; }` (8 bytes);
- `struct sock_fprog { unsigned short len; struct sock_filter *filter; }`.
Installed with `seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog)`
(x86_64 317, aarch64 277) after `PR_SET_NO_NEW_PRIVS`.

The program first checks the architecture field: a call made through another ABI (i386
`int 0x80` on x86_64, x32 numbers with bit 30 set) kills the process, there is no honest
use of it. Denied calls return EPERM (clone3: ENOSYS, so the C library falls back to clone,
which is checked), so a blocked call is an ordinary OSError in Python. Denied:

- other processes: ptrace, process_vm_readv/writev, process_madvise, kcmp, pidfd_open,
  pidfd_getfd, pidfd_send_signal; kill, tkill, tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo
  unless the target is the worker itself (its pid is a constant of its own filter: each
  worker installs its own after fork); prlimit64 unless on itself (0 or its pid);
  setpriority, sched_set{affinity,scheduler,param,attr}, ioprio_set, migrate_pages,
  move_pages, get_robust_list;
- new sockets and connections: socket, socketpair, connect, bind, listen (the pool's
  channel is two inherited pipes);
- execve, execveat; mount, umount2, pivot_root, chroot, the new mount API (open_tree,
  move_mount, fsopen, fsconfig, fsmount, fspick, mount_setattr); unshare, setns, clone
  with a namespace flag; bpf, keyctl, add_key, request_key, userfaultfd, perf_event_open,
  io_uring_* (its operations would bypass this filter), kexec/module/reboot/swap;
  name_to_handle_at and open_by_handle_at (root keeps CAP_DAC_READ_SEARCH to read files,
  and open_by_handle_at with it reaches any inode);
- file modification, a second layer under Landlock: open/openat with O_WRONLY, O_RDWR,
  O_CREAT, O_TRUNC or O_TMPFILE, openat2 (its flags sit behind a pointer), creat, truncate,
  ftruncate, fallocate, unlink(at), rename(at,at2), link(at), symlink(at), mkdir(at),
  rmdir, mknod(at), chmod, fchmod(at,at2), chown, fchown(at), lchown, utime(s),
  futimesat, utimensat, set/remove xattr (all variants).
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct

AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
SYS_SECCOMP = {"x86_64": 317, "aarch64": 277}
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1

RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000
EPERM = 1
ENOSYS = 38

# classic BPF opcodes
LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
RET_K = 0x06  # BPF_RET | BPF_K

OFF_NR, OFF_ARCH = 0, 4


def _arg_lo(index: int) -> int:
    return 16 + 8 * index


def _arg_hi(index: int) -> int:
    return 16 + 8 * index + 4


X32_BIT = 0x40000000

# name: (x86_64, aarch64); None where the architecture has no such call (aarch64 only has
# the *at forms). Numbers from arch/x86/entry/syscalls/syscall_64.tbl and
# include/uapi/asm-generic/unistd.h.
DENIED: dict[str, tuple[int | None, int | None]] = {
    # other processes
    "ptrace": (101, 117),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "process_madvise": (440, 440),
    "kcmp": (312, 272),
    "pidfd_open": (434, 434),
    "pidfd_getfd": (438, 438),
    "pidfd_send_signal": (424, 424),
    "setpriority": (141, 140),
    "sched_setaffinity": (203, 122),
    "sched_setscheduler": (144, 119),
    "sched_setparam": (142, 118),
    "sched_setattr": (314, 274),
    "ioprio_set": (251, 30),
    "migrate_pages": (256, 238),
    "move_pages": (279, 239),
    "get_robust_list": (274, 100),
    # sockets
    "socket": (41, 198),
    "socketpair": (53, 199),
    "connect": (42, 203),
    "bind": (49, 200),
    "listen": (50, 201),
    # programs, mounts, namespaces, kernel facilities
    "execve": (59, 221),
    "execveat": (322, 281),
    "mount": (165, 40),
    "umount2": (166, 39),
    "pivot_root": (155, 41),
    "chroot": (161, 51),
    "open_tree": (428, 428),
    "move_mount": (429, 429),
    "fsopen": (430, 430),
    "fsconfig": (431, 431),
    "fsmount": (432, 432),
    "fspick": (433, 433),
    "mount_setattr": (442, 442),
    "unshare": (272, 97),
    "setns": (308, 268),
    "bpf": (321, 280),
    "keyctl": (250, 219),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "userfaultfd": (323, 282),
    "perf_event_open": (298, 241),
    "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "kexec_load": (246, 104),
    "kexec_file_load": (320, 294),
    "init_module": (175, 105),
    "finit_module": (313, 273),
    "delete_module": (176, 106),
    "reboot": (169, 142),
    "swapon": (167, 224),
    "swapoff": (168, 225),
    "name_to_handle_at": (303, 264),
    "open_by_handle_at": (304, 265),
    # file modification (second layer under Landlock)
    "openat2": (437, 437),
    "creat": (85, None),
    "truncate": (76, 45),
    "ftruncate": (77, 46),
    "fallocate": (285, 47),
    "unlink": (87, None),
    "unlinkat": (263, 35),
    "rename": (82, None),
    "renameat": (264, 38),
    "renameat2": (316, 276),
    "link": (86, None),
    "linkat": (265, 37),
    "symlink": (88, None),
    "symlinkat": (266, 36),
    "mkdir": (83, None),
    "mkdirat": (258, 34),
    "rmdir": (84, None),
    "mknod": (133, None),
    "mknodat": (259, 33),
    "chmod": (90, None),
    "fchmod": (91, 52),
    "fchmodat": (268, 53),
    "fchmodat2": (452, 452),
    "chown": (92, None),
    "fchown": (93, 55),
    "lchown": (94, None),
    "fchownat": (260, 54),
    "utime": (132, None),
    "utimes": (235, None),
    "futimesat": (261, None),
    "utimensat": (280, 88),
    "setxattr": (188, 5),
    "lsetxattr": (189, 6),
    "fsetxattr": (190, 7),
    "removexattr": (197, 14),
    "lremovexattr": (198, 15),
    "fremovexattr": (199, 16),
    "setxattrat": (463, 463),
    "removexattrat": (466, 466),
}
ENOSYS_CALLS: dict[str, tuple[int | None, int | None]] = {"clone3": (435, 435)}
# Allowed only when argument 0 is one of the worker's own ids.
SELF_ONLY: dict[str, tuple[int | None, int | None]] = {
    "kill": (62, 129),
    "tkill": (200, 130),
    "tgkill": (234, 131),
    "rt_sigqueueinfo": (129, 138),
    "rt_tgsigqueueinfo": (297, 240),
    "prlimit64": (302, 261),  # 0 = itself, too
}
# (call, index of the flags argument)
OPEN_CALLS: dict[str, tuple[tuple[int | None, int | None], int]] = {
    "open": ((2, None), 1),
    "openat": ((257, 56), 2),
}
CLONE = (56, 220)
# O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | __O_TMPFILE (same values on both architectures)
OPEN_WRITE_FLAGS = 0o1 | 0o2 | 0o100 | 0o1000 | 0o20000000
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | \
    0x20000000 | 0x40000000
# Most frequent calls first: they leave the filter after a few comparisons.
FAST: dict[str, tuple[int | None, int | None]] = {
    "read": (0, 63),
    "pread64": (17, 67),
    "lseek": (8, 62),
    "fstat": (5, 80),
    "newfstatat": (262, 79),
    "futex": (202, 98),
    "mmap": (9, 222),
    "munmap": (11, 215),
    "close": (3, 57),
    "write": (1, 64),
    "poll": (7, None),
    "ppoll": (271, 73),
    "brk": (12, 214),
    "mremap": (25, 216),
    "madvise": (28, 233),
}

Insn = tuple[int, int, int, int]


def machine() -> str:
    return platform.machine()


def supported() -> bool:
    return machine() in AUDIT_ARCH


def _nr(pair: tuple[int | None, int | None], arch: str) -> int | None:
    return pair[0] if arch == "x86_64" else pair[1]


def _stmt(code: int, k: int) -> Insn:
    return (code, 0, 0, k)


def _jump(code: int, k: int, jt: int, jf: int) -> Insn:
    return (code, jt, jf, k)


def program(arch: str, pid: int) -> list[Insn]:
    """The filter for worker `pid` on `arch` ('x86_64' or 'aarch64')."""
    deny = RET_ERRNO | EPERM
    prog: list[Insn] = [
        _stmt(LD_W_ABS, OFF_ARCH),
        _jump(JEQ_K, AUDIT_ARCH[arch], 1, 0),
        _stmt(RET_K, RET_KILL_PROCESS),
        _stmt(LD_W_ABS, OFF_NR),
    ]
    if arch == "x86_64":  # x32 numbers: same arch field, bit 30 set
        prog += [_jump(JGE_K, X32_BIT, 0, 1), _stmt(RET_K, RET_KILL_PROCESS)]
    for pair in FAST.values():
        nr = _nr(pair, arch)
        if nr is not None:
            prog += [_jump(JEQ_K, nr, 0, 1), _stmt(RET_K, RET_ALLOW)]
    for table, action in ((DENIED, deny), (ENOSYS_CALLS, RET_ERRNO | ENOSYS)):
        for pair in table.values():
            nr = _nr(pair, arch)
            if nr is not None:
                prog += [_jump(JEQ_K, nr, 0, 1), _stmt(RET_K, action)]
    for name, pair in SELF_ONLY.items():
        nr = _nr(pair, arch)
        if nr is None:
            continue
        # nr == X: allow when args[0] is pid (or 0 for prlimit64, "this process"), else EPERM
        own = [pid, 0] if name == "prlimit64" else [pid]
        block: list[Insn] = [_stmt(LD_W_ABS, _arg_hi(0)),
                             _jump(JEQ_K, 0, 0, 2 * len(own) + 1),
                             _stmt(LD_W_ABS, _arg_lo(0))]
        for value in own:
            block += [_jump(JEQ_K, value, 0, 1), _stmt(RET_K, RET_ALLOW)]
        block.append(_stmt(RET_K, deny))
        prog += [_jump(JEQ_K, nr, 0, len(block)), *block]
    for pair, index in OPEN_CALLS.values():
        nr = _nr(pair, arch)
        if nr is None:
            continue
        prog += [
            _jump(JEQ_K, nr, 0, 4),
            _stmt(LD_W_ABS, _arg_lo(index)),
            _jump(JSET_K, OPEN_WRITE_FLAGS, 0, 1),
            _stmt(RET_K, deny),
            _stmt(RET_K, RET_ALLOW),
        ]
    clone = _nr(CLONE, arch)
    assert clone is not None
    prog += [
        _jump(JEQ_K, clone, 0, 4),
        _stmt(LD_W_ABS, _arg_lo(0)),
        _jump(JSET_K, CLONE_NAMESPACES, 0, 1),
        _stmt(RET_K, deny),
        _stmt(RET_K, RET_ALLOW),
        _stmt(RET_K, RET_ALLOW),
    ]
    return prog


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(pid: int | None = None, libc: ctypes.CDLL | None = None) -> str:
    """Install the filter on the calling process (every thread). Raises OSError if refused;
    needs PR_SET_NO_NEW_PRIVS first. Irreversible."""
    arch = machine()
    if arch not in AUDIT_ARCH:
        raise OSError(ENOSYS, f"no seccomp filter for architecture {arch}")
    libc = libc or ctypes.CDLL(None, use_errno=True)
    insns = program(arch, os.getpid() if pid is None else pid)
    raw = b"".join(struct.pack("=HBBI", *insn) for insn in insns)
    buffer = ctypes.create_string_buffer(raw, len(raw))
    prog = SockFprog(len(insns), ctypes.addressof(buffer))
    if libc.syscall(SYS_SECCOMP[arch], ctypes.c_uint(SECCOMP_SET_MODE_FILTER),
                    ctypes.c_uint(SECCOMP_FILTER_FLAG_TSYNC), ctypes.byref(prog)) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"seccomp: {os.strerror(errno)}")
    return f"{len(insns)} instructions ({arch})"
