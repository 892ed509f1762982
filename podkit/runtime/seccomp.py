"""Seccomp profiles for containers.

The default profile follows the idea of Docker's: everything is refused with
EPERM unless allowed; the allow-list holds what ordinary programs use, and the
syscalls that only make sense with a capability (mount, unshare, module loading,
clock setting, reboot...) are allowed only when the container holds that
capability. Namespace creation through ``clone`` is refused unless the container
has CAP_SYS_ADMIN (the flags are checked with a masked compare); ``clone3``
answers ENOSYS so that libc falls back to the checkable ``clone``; ``personality``
is limited to the harmless personas. keyctl & co. are refused: the kernel
keyring is not namespaced.

``profile_for(setting, caps)`` gives the OCI ``linux.seccomp`` object for
``"default"``, ``None`` for ``"unconfined"``, or loads a JSON file in either the
OCI form (``architectures``) or Docker's form (``archMap``, ``includes``/
``excludes`` by capability and architecture).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import platform
from pathlib import Path
from typing import Any

from podkit.errors import InvalidArgument


def _words(text: str) -> list[str]:
    return text.split()


_ALLOWED = _words("""
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2
dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64
fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat
fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64
fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_requeue futex_time64
futex_wait futex_waitv futex_wake futimesat getcpu getcwd getdents getdents64 getegid getegid32
geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp
getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit
get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid gettimeofday
getuid getuid32 getxattr inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel
ioctl io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup
io_submit ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown
lchown32 lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr
lstat lstat64 madvise map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir mkdirat
mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open
mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl
msgget msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat
_newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free
pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease
pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv
recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr rename renameat renameat2
restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn
rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity
sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler
sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64
send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid
setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority
setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit
set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32 setxattr shmat
shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn
socketcall socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat sync
sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun
timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime
timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit
umask uname unlink unlinkat utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid
waitpid write writev
ptrace process_vm_readv process_vm_writev
""")

_ARCH_ONLY: dict[str, list[str]] = {
    "x86_64": ["arch_prctl", "modify_ldt"],
    "aarch64": [
        "arm_fadvise64_64",
        "arm_sync_file_range",
        "sync_file_range2",
        "breakpoint",
        "cacheflush",
        "set_tls",
    ],
}

# Syscalls that need a capability the default set lacks.
_BY_CAP: dict[str, list[str]] = {
    "CAP_SYS_ADMIN": [
        "bpf",
        "clone",
        "clone3",
        "fanotify_init",
        "fsconfig",
        "fsmount",
        "fsopen",
        "fspick",
        "lookup_dcookie",
        "mount",
        "mount_setattr",
        "move_mount",
        "open_tree",
        "perf_event_open",
        "pivot_root",
        "quotactl",
        "quotactl_fd",
        "setns",
        "umount",
        "umount2",
        "unshare",
        "name_to_handle_at",
        "syslog",
        "sethostname",
        "setdomainname",
    ],
    "CAP_SYS_PTRACE": ["kcmp", "pidfd_getfd", "process_madvise"],
    "CAP_SYS_BOOT": ["reboot"],
    "CAP_SYS_CHROOT": ["chroot"],
    "CAP_SYS_MODULE": ["delete_module", "init_module", "finit_module"],
    "CAP_SYS_PACCT": ["acct"],
    "CAP_SYS_RAWIO": ["iopl", "ioperm"],
    "CAP_SYS_TIME": ["settimeofday", "stime", "clock_settime", "clock_settime64"],
    "CAP_SYS_TTY_CONFIG": ["vhangup"],
    "CAP_SYS_NICE": ["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"],
    "CAP_SYSLOG": ["syslog"],
    "CAP_BPF": ["bpf"],
    "CAP_PERFMON": ["perf_event_open"],
    "CAP_DAC_READ_SEARCH": ["open_by_handle_at"],
}

_CLONE_NS_FLAGS = (
    0x00020000  # CLONE_NEWNS
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
    | 0x02000000  # CLONE_NEWCGROUP
)
_AF_VSOCK = 40
# PER_LINUX, PER_LINUX32, UNAME26, PER_LINUX32|UNAME26, and the query value.
_PERSONAS = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

_ARCHES: dict[str, list[str]] = {
    "x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
    "ppc64le": ["SCMP_ARCH_PPC64LE"],
    "s390x": ["SCMP_ARCH_S390X", "SCMP_ARCH_S390"],
    "riscv64": ["SCMP_ARCH_RISCV64"],
}


def _machine() -> str:
    m = platform.machine()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(m, m)


_X32_SYSCALL_BIT = 0x40000000
_NR_GETPID_X86_64 = 39


@functools.cache
def _kernel_runs_x32() -> bool:
    """Whether this kernel executes x32-ABI syscalls (CONFIG_X86_X32_ABI, not off at boot).

    Asked once, by making one: getpid with the x32 bit. Only when the daemon is under
    no seccomp filter of its own - a filter without the x32 arch would kill it for
    asking; then (and whenever in doubt) the answer is yes.
    """
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return True
    if "\nSeccomp:\t0\n" not in status:
        return True
    libc = ctypes.CDLL(None, use_errno=True)
    ret = libc.syscall(_X32_SYSCALL_BIT | _NR_GETPID_X86_64)
    return not (ret == -1 and ctypes.get_errno() == errno.ENOSYS)


def _default_architectures(machine: str) -> list[str]:
    """The default profile's architectures: Docker's, less x32 where the kernel has none.

    libseccomp's work in ``runc init`` grows with the rules times the architectures, and
    x32 shares x86_64's audit arch, which makes its filter the dearest: dropping it takes
    ~8 ms of CPU (~40% of the filter's cost) off every container start. Where the kernel
    runs no x32 code nothing x32 can do anything either way; an x32 syscall is then
    answered by the filter's bad-arch action (SIGSYS) instead of the kernel's ENOSYS.
    """
    arches = list(_ARCHES.get(machine, []))
    if machine == "x86_64" and not _kernel_runs_x32():
        arches.remove("SCMP_ARCH_X32")
    return arches


@functools.lru_cache(maxsize=64)
def _allowed_names(machine: str, caps: frozenset[str]) -> tuple[str, ...]:
    """The unconditional allow-list for ``caps`` (built once per capability set: every
    container start asks, and most ask with the same few sets)."""
    allowed = list(_ALLOWED) + _ARCH_ONLY.get(machine, [])
    for cap, names in _BY_CAP.items():
        if cap in caps:
            allowed.extend(n for n in names if n not in ("clone", "clone3"))
    return tuple(sorted(set(allowed)))


def default_profile(caps: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The default profile for a container holding capabilities ``caps``."""
    machine = _machine()
    capset = frozenset(caps)
    # A fresh list each time: callers own the spec they get and may edit it.
    allowed = list(_allowed_names(machine, capset))
    syscalls: list[dict[str, Any]] = [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]
    # Every socket family but AF_VSOCK (40), which reaches the hypervisor, not a namespace.
    syscalls.append(
        {
            "names": ["socket"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": _AF_VSOCK, "op": "SCMP_CMP_NE"}],
        }
    )
    # One rule per persona: the args inside one rule are ANDed.
    for p in _PERSONAS:
        syscalls.append(
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": p, "op": "SCMP_CMP_EQ"}],
            }
        )
    if "CAP_SYS_ADMIN" in capset:
        syscalls.append({"names": ["clone", "clone3"], "action": "SCMP_ACT_ALLOW"})
    else:
        flags_arg = 1 if machine == "s390x" else 0
        syscalls.append(
            {
                "names": ["clone"],
                "action": "SCMP_ACT_ALLOW",
                "args": [
                    {"index": flags_arg, "value": _CLONE_NS_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
                ],
            }
        )
        # clone3 takes its flags in a struct seccomp cannot inspect: make libc
        # fall back to clone, whose flags we can check.
        syscalls.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS})
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.EPERM,
        "architectures": _default_architectures(machine),
        "syscalls": syscalls,
    }


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for p in text.split("."):
        digits = "".join(c for c in p if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def _kernel_version() -> tuple[int, ...]:
    return _version_tuple(platform.release().split("-")[0])


def from_docker_format(profile: dict[str, Any], caps: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Convert a Docker-style profile (archMap, includes/excludes) to OCI's form."""
    machine = _machine()
    arch_names = _ARCHES.get(machine, [])
    architectures: list[str] = []
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") in arch_names[:1]:
            architectures = [entry["architecture"], *(entry.get("subArchitectures") or [])]
    if not architectures:
        architectures = list(profile.get("architectures") or arch_names)
    capset = set(caps)
    gnu_arch = arch_names[0].removeprefix("SCMP_ARCH_").lower() if arch_names else machine
    arch_aliases = {machine, gnu_arch, {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)}

    def applies(rule: dict[str, Any]) -> bool:
        inc = rule.get("includes") or {}
        exc = rule.get("excludes") or {}
        if inc.get("minKernel") and _kernel_version() < _version_tuple(str(inc["minKernel"])):
            return False
        if inc.get("caps") and not set(inc["caps"]) <= capset:
            return False
        if inc.get("arches") and not arch_aliases & set(inc["arches"]):
            return False
        if exc.get("caps") and set(exc["caps"]) & capset:
            return False
        return not (exc.get("arches") and arch_aliases & set(exc["arches"]))

    syscalls = []
    for rule in profile.get("syscalls") or []:
        if not applies(rule):
            continue
        r = {k: v for k, v in rule.items() if k not in ("includes", "excludes", "comment")}
        if "name" in r and "names" not in r:
            r["names"] = [r.pop("name")]
        syscalls.append(r)
    out: dict[str, Any] = {
        "defaultAction": profile["defaultAction"],
        "architectures": architectures,
        "syscalls": syscalls,
    }
    for key in ("defaultErrnoRet", "flags", "listenerPath", "listenerMetadata"):
        if key in profile:
            out[key] = profile[key]
    return out


def load_profile(path: str, caps: list[str] | tuple[str, ...]) -> dict[str, Any]:
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as e:
        raise InvalidArgument(f"seccomp profile {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise InvalidArgument(f"seccomp profile {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict) or "defaultAction" not in data:
        raise InvalidArgument(f"seccomp profile {path}: missing defaultAction")
    if not isinstance(data.get("syscalls", []), list):
        raise InvalidArgument(f"seccomp profile {path}: syscalls must be a list")
    return from_docker_format(data, caps)


def profile_for(setting: str | None, caps: list[str] | tuple[str, ...]) -> dict[str, Any] | None:
    """OCI ``linux.seccomp`` for ``"default"`` / ``"unconfined"`` / a file path."""
    if setting in (None, "", "default"):
        return default_profile(caps)
    if setting == "unconfined":
        return None
    return load_profile(setting, caps)
