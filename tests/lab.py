"""The test lab: N hosts as Linux network namespaces on one private bridge.

Layout of one :class:`Lab` (prefix ``mwl<pid>x<n>``, unique per lab and per process)::

    netns <prefix>br                 netns <prefix>-h1        netns <prefix>-h2
    +-----------------------+        +----------------+       +----------------+
    | br0 (bridge, up,      |--v1====| eth0 10.77.0.1 |       | eth0 10.77.0.2 |
    |  mcast_snooping 0)    |--v2====================================|          |
    +-----------------------+        +----------------+       +----------------+

* Every veth pair is created *inside* the bridge namespace with its peer moved straight into
  the host namespace, so no interface ever exists in the root namespace.
* Hosts get ``10.77.0.<n>/24`` on ``eth0``, ``lo`` up and a route ``224.0.0.0/4 dev eth0`` so
  multicast (mDNS) has a route.  There is deliberately **no default route** (IPv4 or IPv6), so
  nothing can leave the lab.  The bridge namespace has no addresses at all (IPv6 address
  generation is disabled on its links).
* ``mcast_snooping 0`` makes the bridge flood multicast to every port (no IGMP querier needed).

Faults:

* :meth:`Host.cut` detaches the host's bridge port (``nomaster``).  The host keeps carrier,
  address and routes: its processes notice nothing but silence.  :meth:`Host.heal` re-attaches.
* :meth:`Host.set_loss` drops a percentage of frames in *each* direction of the host's link.
  Backend ``netem`` (preferred when the kernel has ``sch_netem``) puts a netem qdisc on the
  host's ``eth0`` egress and on the bridge port's egress.  Backend ``nft`` (fallback) loads a
  bridge-family nftables table in the bridge namespace that drops
  ``numgen random mod 10000 < percent*100`` of the frames forwarded from or to the host's port.
  Note that netem loss on the host's own egress is local to the sending host's stack: UDP
  does not notice, TCP sees it as local congestion.  The nft backend is invisible to the host.
* :meth:`Host.set_delay` needs netem; without it :class:`LabFeatureUnavailable` is raised so a
  test can ``pytest.skip(str(exc))``.

Cleanup (:meth:`Lab.close`, also on ``__exit__``, an ``atexit`` backstop, and
:func:`sweep_stale_labs` for labs of dead processes) terminates, then kills, every tracked
process and every process still inside a lab namespace, then deletes the namespaces (which
also removes the veths, qdiscs and nftables tables inside them).  It is idempotent, bounded in
time and never raises.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import itertools
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import IO, Any, Literal

__all__ = [
    "LAB_SUBNET",
    "MULTICAST_ROUTE",
    "Host",
    "Lab",
    "LabError",
    "LabFeatureUnavailable",
    "LossBackend",
    "expect_line",
    "lab_unavailable_reason",
    "netem_available",
    "nft_available",
    "sweep_stale_labs",
]

log = logging.getLogger(__name__)

NAME_PREFIX = "mwl"
LAB_SUBNET = "10.77.0"
MULTICAST_ROUTE = "224.0.0.0/4"
HOST_IFACE = "eth0"
BRIDGE = "br0"
SPLIT_BRIDGE = "brsplit"
MCAST_TABLE = "mwl_nomcast"
ISOLATION_TABLE = "mwl_isolation"
"""The other half of a partition (Lab.partition)."""
MAX_HOSTS = 254

CMD_TIMEOUT = 10.0
"""Upper bound for any single helper command (``ip``, ``tc``, ``nft``)."""

_STALE_RE = re.compile(rf"^{NAME_PREFIX}(\d+)x")
_HOST_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,15}$")
_NETNS_DIR = "/run/netns"

LossBackend = Literal["auto", "netem", "nft"]
StdFile = int | IO[Any] | None

_ids = itertools.count(1)
_ids_lock = threading.Lock()
_open_labs: set[Lab] = set()
_open_labs_lock = threading.Lock()


class LabError(RuntimeError):
    """A lab operation failed."""


class LabFeatureUnavailable(LabError):
    """The kernel or userland lacks what a lab feature needs; ``str(exc)`` is the reason."""


# --------------------------------------------------------------------------------------------
# small helpers


def _next_id() -> int:
    with _ids_lock:
        return next(_ids)


def _run(
    argv: Sequence[str],
    *,
    timeout: float = CMD_TIMEOUT,
    check: bool = True,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a helper command with a bound; with ``check`` raise :class:`LabError` on failure."""
    try:
        proc = subprocess.run(
            list(argv),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=None if input_text is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"`{' '.join(argv)}` timed out after {timeout}s") from exc
    except OSError as exc:
        raise LabError(f"`{' '.join(argv)}` could not run: {exc}") from exc
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise LabError(f"`{' '.join(argv)}` failed (exit {proc.returncode}): {detail}")
    return proc


def _poll_until(condition: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``condition`` until it is true or ``timeout`` seconds passed; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _ns_key(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _pids_in_netns(namespaces: Sequence[str]) -> dict[int, str]:
    """Live (non-zombie) pids whose network namespace is one of ``namespaces``.

    Equivalent to ``ip netns pids NS`` for several namespaces in one pass over ``/proc``.  The
    root namespace is never matched, whatever the names point at.
    """
    root = _ns_key("/proc/1/ns/net")
    own = _ns_key("/proc/self/ns/net")
    keys: dict[tuple[int, int], str] = {}
    for ns in namespaces:
        key = _ns_key(os.path.join(_NETNS_DIR, ns))
        if key is not None and key != root and key != own:
            keys[key] = ns
    found: dict[int, str] = {}
    if not keys:
        return found
    me = os.getpid()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid == me:
            continue
        key = _ns_key(f"/proc/{entry}/ns/net")  # zombies have no ns link: ENOENT
        if key is not None and key in keys:
            found[pid] = keys[key]
    return found


def _signal_pid(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _list_netns() -> list[str]:
    proc = _run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def _kill_netns_processes(
    namespaces: Sequence[str],
    popens: Sequence[subprocess.Popen[bytes]],
    grace: float,
    deadline: float,
    children: Callable[[], list[int]] = list,
) -> list[int]:
    """SIGTERM, wait up to ``grace``, SIGKILL, wait until ``deadline``; return survivors.

    ``children`` lists our own children not reaped yet (asyncio's): they are signalled by
    pid too, since one spawned a moment ago may not have entered its namespace yet."""

    def alive() -> set[int]:
        pids = set(_pids_in_netns(namespaces))
        pids.update(p.pid for p in popens if p.poll() is None)
        pids.update(children())
        return pids

    for sig, until in (
        (signal.SIGTERM, min(deadline, time.monotonic() + grace)),
        (signal.SIGKILL, deadline),
    ):
        pids = alive()
        if not pids:
            return []
        for p in popens:
            if p.poll() is None:
                with contextlib.suppress(OSError):
                    p.send_signal(sig)
        for pid in {*_pids_in_netns(namespaces), *children()}:
            _signal_pid(pid, sig)
        _poll_until(lambda: not alive(), max(0.0, until - time.monotonic()))
    return sorted(alive())


def _delete_netns(namespaces: Sequence[str], errors: list[str]) -> None:
    existing = set(_list_netns())
    for ns in namespaces:
        if ns not in existing:
            continue
        proc = _run(["ip", "netns", "del", ns], check=False, timeout=5.0)
        if proc.returncode != 0:
            errors.append(f"ip netns del {ns}: {proc.stderr.strip()}")


# --------------------------------------------------------------------------------------------
# availability probes


@functools.cache
def lab_unavailable_reason() -> str | None:
    """``None`` when labs can be built here, else a human-readable reason (for ``skip``)."""
    if not sys.platform.startswith("linux"):
        return "test lab needs Linux"
    if os.geteuid() != 0:
        return "test lab needs root (network namespaces)"
    if shutil.which("ip") is None:
        return "iproute2 `ip` not found"
    ns = f"{NAME_PREFIX}{os.getpid()}x{_next_id()}chk"
    try:
        _run(["ip", "netns", "add", ns])
        _run(["ip", "-n", ns, "link", "add", "b0", "type", "bridge"])
        _run(["ip", "-n", ns, "link", "add", "v0", "type", "veth", "peer", "name", "v1"])
    except LabError as exc:
        return f"cannot create network namespaces / bridges / veths: {exc}"
    finally:
        with contextlib.suppress(LabError):
            _delete_netns([ns], [])
    return None


def _with_probe_netns(probe: Callable[[str], str | None]) -> str | None:
    """Run ``probe(netns)`` in a throwaway namespace; it returns None on success or a reason."""
    reason = lab_unavailable_reason()
    if reason is not None:
        return reason
    ns = f"{NAME_PREFIX}{os.getpid()}x{_next_id()}prb"
    try:
        _run(["ip", "netns", "add", ns])
        return probe(ns)
    except LabError as exc:
        return str(exc)
    finally:
        with contextlib.suppress(LabError):
            _delete_netns([ns], [])


@functools.cache
def _netem_reason() -> str | None:
    if shutil.which("tc") is None:
        return "tc netem unavailable: iproute2 `tc` not found"

    def probe(ns: str) -> str | None:
        _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        proc = _run(
            ["tc", "-n", ns, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
            check=False,
        )
        if proc.returncode != 0:
            return f"tc netem unavailable (kernel lacks sch_netem?): {proc.stderr.strip()}"
        return None

    return _with_probe_netns(probe)


def _nft_ruleset(table: str, port: str, percent: float) -> str:
    threshold = round(percent * 100)  # numgen gives 0..9999: resolution 0.01 %
    # nft rejects a constant outside the numgen range, so 100 % is an unconditional drop
    match = "" if threshold >= 10000 else f" numgen random mod 10000 < {threshold}"
    return (
        f"add table bridge {table}\n"
        f"delete table bridge {table}\n"
        f"table bridge {table} {{\n"
        f"  chain impair {{\n"
        f"    type filter hook forward priority 0; policy accept;\n"
        f'    iifname "{port}"{match} drop\n'
        f'    oifname "{port}"{match} drop\n'
        f"  }}\n"
        f"}}\n"
    )


@functools.cache
def _nft_reason() -> str | None:
    if shutil.which("nft") is None:
        return "nftables unavailable: `nft` not found (apt-get install nftables)"

    def probe(ns: str) -> str | None:
        proc = _run(
            ["ip", "netns", "exec", ns, "nft", "-f", "-"],
            input_text=_nft_ruleset("mwlprobe", "v1", 50.0),
            check=False,
        )
        if proc.returncode != 0:
            return f"nftables bridge/numgen unavailable: {proc.stderr.strip()}"
        return None

    return _with_probe_netns(probe)


def netem_available() -> bool:
    """Whether ``tc ... netem`` works here (probed once in a throwaway namespace, cached)."""
    return _netem_reason() is None


def nft_available() -> bool:
    """Whether bridge-family nftables with ``numgen`` works (probed once, cached)."""
    return _nft_reason() is None


# --------------------------------------------------------------------------------------------
# stale labs


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def sweep_stale_labs() -> list[str]:
    """Remove lab namespaces (``mwl<pid>x...``) whose creating pid is dead; return their names.

    Processes left inside them are killed first.  Never raises.
    """
    try:
        if lab_unavailable_reason() is not None:
            return []
        stale: list[str] = []
        for ns in _list_netns():
            m = _STALE_RE.match(ns)
            if m is None:
                continue
            pid = int(m.group(1))
            if pid != os.getpid() and not _pid_alive(pid):
                stale.append(ns)
        if not stale:
            return []
        deadline = time.monotonic() + 10.0
        _kill_netns_processes(stale, [], grace=1.0, deadline=deadline)
        errors: list[str] = []
        # host namespaces first, bridge namespaces last
        _delete_netns(sorted(stale, key=lambda n: n.endswith("br")), errors)
        for e in errors:
            log.warning("sweep_stale_labs: %s", e)
        return stale
    except Exception as exc:  # never raise from a sweep
        log.warning("sweep_stale_labs failed: %s", exc)
        return []


# --------------------------------------------------------------------------------------------
# hosts


async def expect_line(
    stream: asyncio.StreamReader | None, needle: str, within: float = 10.0
) -> str:
    """Read lines from ``stream`` until one contains ``needle``; return it (decoded, stripped).

    Raises :class:`TimeoutError` after ``within`` seconds and :class:`EOFError` at EOF, both
    listing the lines seen so far.
    """
    if stream is None:
        raise ValueError("stream is None (spawn with stdout=PIPE)")
    seen: list[str] = []
    try:
        async with asyncio.timeout(within):
            while True:
                raw = await stream.readline()
                if not raw:
                    raise EOFError(f"EOF before a line containing {needle!r}; saw {seen!r}")
                line = raw.decode(errors="replace").rstrip("\r\n")
                if needle in line:
                    return line
                seen.append(line)
    except TimeoutError:
        raise TimeoutError(
            f"no line containing {needle!r} within {within}s; saw {seen!r}"
        ) from None


class Host:
    """One lab host: a network namespace with ``eth0`` on the lab bridge.  Make via the lab."""

    def __init__(self, lab: Lab, name: str, index: int) -> None:
        self.lab = lab
        self.name = name
        self.index = index
        self.netns = f"{lab.prefix}-{name}"
        self.ip = f"{LAB_SUBNET}.{index}"
        self.interface = HOST_IFACE
        self.bridge_port = f"v{index}"
        self._loss = 0.0
        self._loss_backend: Literal["netem", "nft"] | None = None
        self._delay_ms = 0.0
        self._netem_on = False
        self._cut = False
        self.extra: dict[str, str] = {}
        """Interfaces beyond eth0 (add_interface) and their addresses."""

    def __repr__(self) -> str:
        return f"Host({self.name!r}, netns={self.netns!r}, ip={self.ip!r})"

    # -- the host's own network changes ----------------------------------------------------

    def set_link(self, up: bool, interface: str = HOST_IFACE) -> None:
        """``ip link set <interface> up|down`` inside the host (its addresses stay; its routes
        go with the link, and the multicast route is put back on up, as a DHCP client or
        network manager would)."""
        self.lab._check_open()
        _run(["ip", "-n", self.netns, "link", "set", interface, "up" if up else "down"])
        if up:
            if not _poll_until(lambda: self.link_up(interface), 5.0):
                raise LabError(f"{self.netns}: {interface} did not come up")
            if interface == HOST_IFACE:
                _run(
                    ["ip", "-n", self.netns, "route", "replace", MULTICAST_ROUTE, "dev", interface]
                )

    def set_address(self, ip: str, interface: str = HOST_IFACE) -> str:
        """Replace the interface's address with ``ip`` (/24), as a new DHCP lease does; returns
        the old one.  The multicast route is put back (routes tied to the old address go)."""
        self.lab._check_open()
        old = self.ip if interface == HOST_IFACE else self.extra[interface]
        _run(["ip", "-n", self.netns, "addr", "del", f"{old}/24", "dev", interface])
        _run(["ip", "-n", self.netns, "addr", "add", f"{ip}/24", "dev", interface])
        if interface == HOST_IFACE:
            self.ip = ip
            _run(["ip", "-n", self.netns, "route", "replace", MULTICAST_ROUTE, "dev", interface])
        else:
            self.extra[interface] = ip
        return old

    def add_interface(self, network: int = 1) -> str:
        """A second (third…) interface ``eth<network>`` on the lab's network ``network`` (its own
        bridge and subnet ``10.<77+network>.0.0/24``), as a Wi-Fi beside Ethernet; returns its
        address."""
        return self.lab._attach(self, network)

    @property
    def addresses(self) -> list[str]:
        """Every lab address of this host, eth0's first."""
        return [self.ip, *self.extra.values()]

    def move_to(self, network: int) -> str:
        """Leave the lab's first network for ``network`` alone: an interface there, eth0 down
        (a device on another VLAN).  Returns the new address; ``self.ip`` becomes it."""
        ip = self.add_interface(network)
        self.set_link(False)
        self.ip = ip
        self.interface = f"eth{network}"
        _run(["ip", "-n", self.netns, "route", "replace", MULTICAST_ROUTE, "dev", self.interface])
        return ip

    @property
    def networks(self) -> list[int]:
        """The lab networks this host is on (0: the first, eth0's, while eth0 is up)."""
        extra = [int(iface.removeprefix("eth")) for iface in self.extra]
        return [*([0] if self.link_up(HOST_IFACE) else []), *extra]

    # -- processes ---------------------------------------------------------------------------

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` wrapped so it runs inside this host (``ip netns exec`` execs, no fork)."""
        args = [str(a) for a in argv]
        if not args:
            raise ValueError("empty argv")
        return ["ip", "netns", "exec", self.netns, *args]

    @staticmethod
    def _env(env: Mapping[str, str] | None) -> dict[str, str] | None:
        return None if env is None else {**os.environ, **env}

    def spawn(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        stdin: StdFile = subprocess.PIPE,
        stdout: StdFile = subprocess.PIPE,
        stderr: StdFile = subprocess.PIPE,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside this host; the Popen's pid is the process itself.

        ``env`` is *added* to the current environment.  The process is tracked and killed by
        :meth:`Lab.close`.  It runs in its own session (terminal ^C does not reach it).
        """
        self.lab._check_open()
        proc = subprocess.Popen(
            self.command(argv),
            env=self._env(env),
            cwd=cwd,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
        self.lab._track(proc)
        return proc

    async def spawn_async(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        stdin: StdFile = subprocess.PIPE,
        stdout: StdFile = subprocess.PIPE,
        stderr: StdFile = subprocess.PIPE,
        limit: int = 2**16,
    ) -> asyncio.subprocess.Process:
        """Asyncio variant of :meth:`spawn` (same semantics, tracked the same way).

        ``limit`` is the stream reader's line limit (raise it for long lines).
        """
        self.lab._check_open()
        proc = await asyncio.create_subprocess_exec(
            *self.command(argv),
            env=self._env(env),
            cwd=cwd,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            limit=limit,
        )
        self.lab._track_async(proc)
        return proc

    def run(
        self,
        argv: Sequence[str],
        timeout: float = CMD_TIMEOUT,
        *,
        check: bool = False,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside this host to completion (text output captured).

        Raises :class:`subprocess.TimeoutExpired` (after killing it) past ``timeout``.
        """
        self.lab._check_open()
        return subprocess.run(
            self.command(argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
            env=self._env(env),
            cwd=cwd,
            stdin=None if input is not None else subprocess.DEVNULL,
        )

    # -- link state --------------------------------------------------------------------------

    def link_info(self, interface: str = HOST_IFACE) -> dict[str, Any]:
        """``ip -j link show eth0`` inside the host, as a dict."""
        proc = _run(["ip", "-n", self.netns, "-j", "link", "show", interface])
        data: list[dict[str, Any]] = json.loads(proc.stdout)
        return data[0]

    def link_up(self, interface: str = HOST_IFACE) -> bool:
        """Whether the host's ``eth0`` is up with carrier (it stays so while cut)."""
        info = self.link_info(interface)
        return info.get("operstate") == "UP" and "LOWER_UP" in info.get("flags", [])

    @property
    def is_cut(self) -> bool:
        return self._cut

    def cut(self) -> None:
        """Silently disconnect: detach the bridge-side veth from the bridge.

        The host keeps carrier, address and routes; frames it sends vanish and nothing reaches
        it.  Idempotent.
        """
        self.lab._check_open()
        _run(["ip", "-n", self.lab.bridge_netns, "link", "set", self.bridge_port, "nomaster"])
        self._cut = True

    def heal(self) -> None:
        """Undo :meth:`cut` (re-attach to the bridge, wait until the port forwards)."""
        self.lab._check_open()
        _run(["ip", "-n", self.lab.bridge_netns, "link", "set", self.bridge_port, "master", BRIDGE])
        self._cut = False
        self.lab._wait_port_forwarding(self.bridge_port)

    # -- impairments -------------------------------------------------------------------------

    def set_loss(self, percent: float, *, backend: LossBackend = "auto") -> str:
        """Drop ``percent`` % of frames in each direction of this host's link.

        ``backend="auto"`` uses netem when the kernel has it, else nftables in the bridge
        namespace.  Returns the backend used.  Raises :class:`LabFeatureUnavailable` when
        neither works.  ``percent=0`` removes the loss.
        """
        self.lab._check_open()
        if not 0.0 <= percent <= 100.0:
            raise ValueError(f"loss percent must be within 0..100, got {percent}")
        chosen: Literal["netem", "nft"]
        if backend == "auto":
            if netem_available():
                chosen = "netem"
            elif nft_available():
                chosen = "nft"
            else:
                raise LabFeatureUnavailable(
                    f"packet loss needs tc netem or nftables: {_netem_reason()}; {_nft_reason()}"
                )
        else:
            chosen = backend
            reason = _netem_reason() if chosen == "netem" else _nft_reason()
            if reason is not None:
                raise LabFeatureUnavailable(reason)
        if self._loss_backend is not None and self._loss_backend != chosen:
            self._clear_loss()
        self._loss = percent
        self._loss_backend = chosen if percent > 0 else None
        if chosen == "netem":
            self._apply_netem()
        elif percent > 0:
            self._apply_nft_loss()
        else:
            self._clear_nft_loss()
        return chosen

    def set_delay(self, ms: float) -> None:
        """Add ``ms`` milliseconds of delay in each direction (RTT grows by ``2*ms``).

        Needs netem; raises :class:`LabFeatureUnavailable` without it.
        """
        self.lab._check_open()
        if ms < 0:
            raise ValueError(f"delay must be >= 0, got {ms}")
        reason = _netem_reason()
        if reason is not None:
            raise LabFeatureUnavailable(f"set_delay needs netem: {reason}")
        self._delay_ms = ms
        self._apply_netem()

    def clear_impairments(self) -> None:
        """Remove loss and delay (does not heal a cut)."""
        self.lab._check_open()
        self._delay_ms = 0.0
        self._clear_loss()
        self._apply_netem()

    def _clear_loss(self) -> None:
        if self._loss_backend == "nft":
            self._clear_nft_loss()
        self._loss = 0.0
        self._loss_backend = None

    def _netem_targets(self) -> list[tuple[str, str]]:
        return [(self.netns, self.interface), (self.lab.bridge_netns, self.bridge_port)]

    def _apply_netem(self) -> None:
        params: list[str] = []
        if self._delay_ms > 0:
            params += ["delay", f"{self._delay_ms:g}ms"]
        if self._loss_backend == "netem" and self._loss > 0:
            params += ["loss", f"{self._loss:g}%"]
        if not params:
            if self._netem_on:
                for ns, dev in self._netem_targets():
                    _run(["tc", "-n", ns, "qdisc", "del", "dev", dev, "root"], check=False)
                self._netem_on = False
            return
        for ns, dev in self._netem_targets():
            _run(["tc", "-n", ns, "qdisc", "replace", "dev", dev, "root", "netem", *params])
        self._netem_on = True

    @property
    def _nft_table(self) -> str:
        return f"mwl_loss_{self.bridge_port}"

    def _apply_nft_loss(self) -> None:
        _run(
            ["ip", "netns", "exec", self.lab.bridge_netns, "nft", "-f", "-"],
            input_text=_nft_ruleset(self._nft_table, self.bridge_port, self._loss),
        )
        self.lab._nft_tables.add(self._nft_table)

    def _clear_nft_loss(self) -> None:
        if self._nft_table in self.lab._nft_tables:
            _run(
                [
                    "ip",
                    "netns",
                    "exec",
                    self.lab.bridge_netns,
                    "nft",
                    "delete",
                    "table",
                    "bridge",
                    self._nft_table,
                ]
            )
            self.lab._nft_tables.discard(self._nft_table)


# --------------------------------------------------------------------------------------------
# the lab


class Lab:
    """A private bridge plus hosts; a context manager.  ``Lab(3)`` builds three hosts now.

    :meth:`close` (also run by ``__exit__`` and at interpreter exit) removes everything.
    """

    def __init__(
        self, n_hosts: int = 0, *, term_grace: float = 2.0, close_timeout: float = 20.0
    ) -> None:
        reason = lab_unavailable_reason()
        if reason is not None:
            raise LabFeatureUnavailable(reason)
        self.prefix = f"{NAME_PREFIX}{os.getpid()}x{_next_id()}"
        self.bridge_netns = f"{self.prefix}br"
        self.term_grace = term_grace
        self.close_timeout = close_timeout
        self.cleanup_errors: list[str] = []
        self._hosts: list[Host] = []
        self._namespaces: list[str] = []
        self._popens: list[subprocess.Popen[bytes]] = []
        self._aprocs: list[asyncio.subprocess.Process] = []
        self._nft_tables: set[str] = set()
        self._bridges: set[str] = {BRIDGE}
        self._split: set[str] = set()  # hosts moved to SPLIT_BRIDGE
        self._closed = False
        self._lock = threading.RLock()
        with _open_labs_lock:
            _open_labs.add(self)
        try:
            self._create_bridge()
            for _ in range(n_hosts):
                self.add_host()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"Lab({self.prefix!r}, hosts={[h.name for h in self._hosts]!r})"

    def __enter__(self) -> Lab:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Lab:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def namespaces(self) -> list[str]:
        """Every namespace this lab created (hosts and bridge)."""
        return list(self._namespaces)

    def _check_open(self) -> None:
        if self._closed:
            raise LabError(f"lab {self.prefix} is closed")

    def capture(self, path: str | os.PathLike[str]) -> subprocess.Popen[bytes]:
        """Record every frame on every port of the lab bridge into the pcap file
        ``path`` (tcpdump in the bridge namespace: what a listener on the room's
        network sees). Returns once tcpdump listens; stop it with SIGINT (it
        flushes the file), or :meth:`close` kills it."""
        self._check_open()
        if shutil.which("tcpdump") is None:
            raise LabFeatureUnavailable("tcpdump is not installed (apt install tcpdump)")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.bridge_netns, "tcpdump", "-i", "any", "-s", "0",
             "-U", "-n", "-w", os.fspath(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )  # fmt: skip
        self._track(proc)
        assert proc.stderr is not None
        said = b""
        for _ in range(5):  # "data link type …", then "listening on any, …" once it captures
            line = proc.stderr.readline()
            said += line
            if b"listening" in line or not line:
                break
        if b"listening" not in said:
            proc.kill()
            raise LabError(f"tcpdump did not start: {said.decode(errors='replace')}")
        return proc

    def _track(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._popens.append(proc)

    def _track_async(self, proc: asyncio.subprocess.Process) -> None:
        with self._lock:
            self._aprocs.append(proc)

    def _unreaped(self) -> list[int]:
        """Our asyncio children not reaped yet (their pids are still ours to signal)."""
        with self._lock:
            return [p.pid for p in self._aprocs if p.returncode is None]

    def _add_netns(self, ns: str) -> None:
        self._namespaces.append(ns)  # recorded first so a half-made namespace is cleaned
        _run(["ip", "netns", "add", ns])
        _run(["ip", "-n", ns, "link", "set", "lo", "up"])

    def _create_bridge(self) -> None:
        ns = self.bridge_netns
        self._add_netns(ns)
        _run(["ip", "-n", ns, "link", "add", BRIDGE, "type", "bridge", "mcast_snooping", "0"])
        _run(["ip", "-n", ns, "link", "set", BRIDGE, "addrgenmode", "none"])
        _run(["ip", "-n", ns, "link", "set", BRIDGE, "up"])

    def _wait_port_forwarding(self, port: str, timeout: float = 5.0) -> None:
        def forwarding() -> bool:
            proc = _run(["ip", "-n", self.bridge_netns, "-j", "-d", "link", "show", port])
            data: list[dict[str, Any]] = json.loads(proc.stdout)
            slave = data[0].get("linkinfo", {}).get("info_slave_data", {})
            return bool(slave.get("state") == "forwarding")

        if not _poll_until(forwarding, timeout):
            raise LabError(f"bridge port {port} not forwarding after {timeout}s")

    def add_host(self, name: str | None = None) -> Host:
        """Create a host ``10.77.0.<n>`` (n = 1, 2, ...) attached to the bridge."""
        with self._lock:
            self._check_open()
            index = len(self._hosts) + 1
            if index > MAX_HOSTS:
                raise LabError(f"at most {MAX_HOSTS} hosts")
            name = name if name is not None else f"h{index}"
            if not _HOST_NAME_RE.match(name):
                raise ValueError(f"bad host name {name!r} (want {_HOST_NAME_RE.pattern})")
            if any(h.name == name for h in self._hosts):
                raise ValueError(f"duplicate host name {name!r}")
            host = Host(self, name, index)
            self._hosts.append(host)
            br, ns, port = self.bridge_netns, host.netns, host.bridge_port
            self._add_netns(ns)
            # created inside the bridge namespace, peer moved straight into the host: nothing
            # ever appears in the root namespace.
            _run(
                [
                    "ip",
                    "-n",
                    br,
                    "link",
                    "add",
                    port,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    HOST_IFACE,
                    "netns",
                    ns,
                ]
            )
            _run(["ip", "-n", br, "link", "set", port, "addrgenmode", "none"])
            _run(["ip", "-n", br, "link", "set", port, "master", BRIDGE])
            _run(["ip", "-n", br, "link", "set", port, "up"])
            _run(["ip", "-n", ns, "addr", "add", f"{host.ip}/24", "dev", HOST_IFACE])
            _run(["ip", "-n", ns, "link", "set", HOST_IFACE, "up"])
            _run(["ip", "-n", ns, "route", "add", MULTICAST_ROUTE, "dev", HOST_IFACE])
            for family in ("-4", "-6"):
                routes = _run(["ip", "-n", ns, family, "route", "show", "default"]).stdout
                if routes.strip():
                    raise LabError(f"host {ns} unexpectedly has a default route: {routes}")
            if not _poll_until(host.link_up, 5.0):
                raise LabError(f"{ns}: {HOST_IFACE} did not come up")
            self._wait_port_forwarding(port)
            return host

    def _attach(self, host: Host, network: int) -> str:
        """Put ``host`` on lab network ``network`` (bridge ``br<network>``, made on first use)."""
        if not 1 <= network <= 9:
            raise ValueError(f"network must be 1..9, got {network}")
        with self._lock:
            self._check_open()
            br, ns = self.bridge_netns, host.netns
            bridge = f"br{network}"
            if bridge not in self._bridges:
                _run(
                    ["ip", "-n", br, "link", "add", bridge, "type", "bridge", "mcast_snooping", "0"]
                )
                _run(["ip", "-n", br, "link", "set", bridge, "addrgenmode", "none"])
                _run(["ip", "-n", br, "link", "set", bridge, "up"])
                self._bridges.add(bridge)
            iface = f"eth{network}"
            if iface in host.extra:
                raise ValueError(f"{host.name} is already on network {network}")
            port = f"v{host.index}n{network}"
            ip = f"{_subnet(network)}.{host.index}"
            _run(["ip", "-n", br, "link", "add", port, "type", "veth", "peer", "name", iface,
                  "netns", ns])  # fmt: skip
            _run(["ip", "-n", br, "link", "set", port, "addrgenmode", "none"])
            _run(["ip", "-n", br, "link", "set", port, "master", bridge])
            _run(["ip", "-n", br, "link", "set", port, "up"])
            _run(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", iface])
            _run(["ip", "-n", ns, "link", "set", iface, "up"])
            if not _poll_until(lambda: host.link_up(iface), 5.0):
                raise LabError(f"{ns}: {iface} did not come up")
            self._wait_port_forwarding(port)
            host.extra[iface] = ip
            return ip

    def partition(self, side: Sequence[Host]) -> None:
        """Split the lab in two: the hosts of ``side`` move to a bridge of their own (they
        reach each other, and nothing of the other hosts').  :meth:`heal_partition` undoes it."""
        with self._lock:
            self._check_open()
            br = self.bridge_netns
            if SPLIT_BRIDGE not in self._bridges:
                _run(["ip", "-n", br, "link", "add", SPLIT_BRIDGE, "type", "bridge",
                      "mcast_snooping", "0"])  # fmt: skip
                _run(["ip", "-n", br, "link", "set", SPLIT_BRIDGE, "addrgenmode", "none"])
                _run(["ip", "-n", br, "link", "set", SPLIT_BRIDGE, "up"])
                self._bridges.add(SPLIT_BRIDGE)
            for host in side:
                _run(["ip", "-n", br, "link", "set", host.bridge_port, "master", SPLIT_BRIDGE])
                self._split.add(host.name)
            for host in side:
                self._wait_port_forwarding(host.bridge_port)

    def heal_partition(self) -> None:
        """Put every host that :meth:`partition` moved back on the lab bridge."""
        with self._lock:
            self._check_open()
            moved = [h for h in self._hosts if h.name in self._split]
            for host in moved:
                _run(["ip", "-n", self.bridge_netns, "link", "set", host.bridge_port, "master",
                      BRIDGE])  # fmt: skip
            self._split.clear()
            for host in moved:
                self._wait_port_forwarding(host.bridge_port)

    def drop_multicast(self) -> None:
        """The bridges forward no IPv4 multicast from now on (client isolation, or IGMP
        snooping without a querier, on a venue's Wi-Fi): mDNS reaches nobody."""
        with self._lock:
            self._check_open()
            _run(
                ["ip", "netns", "exec", self.bridge_netns, "nft", "-f", "-"],
                input_text=(
                    f"table bridge {MCAST_TABLE} {{\n"
                    "  chain forward {\n"
                    "    type filter hook forward priority 0; policy accept;\n"
                    "    ip daddr 224.0.0.0/4 counter drop\n"
                    "  }\n"
                    "}\n"
                ),
            )
            self._nft_tables.add(MCAST_TABLE)

    def isolate_clients(self, wired: Sequence[Host]) -> None:
        """Client isolation, as on a venue's Wi-Fi: the bridge forwards nothing between
        two hosts that are not `wired` (unicast and multicast alike); a wired host
        reaches every host and every host reaches it."""
        with self._lock:
            self._check_open()
            ports = ", ".join(f'"{h.bridge_port}"' for h in wired)
            _run(
                ["ip", "netns", "exec", self.bridge_netns, "nft", "-f", "-"],
                input_text=(
                    f"table bridge {ISOLATION_TABLE} {{\n"
                    "  chain forward {\n"
                    "    type filter hook forward priority 0; policy accept;\n"
                    f"    iifname != {{ {ports} }} oifname != {{ {ports} }} counter drop\n"
                    "  }\n"
                    "}\n"
                ),
            )
            self._nft_tables.add(ISOLATION_TABLE)

    def add_router(self, networks: Sequence[int] = (0, 1), allow: Sequence[str] = ()) -> str:
        """A router namespace on ``networks`` (address ``.254`` on each), forwarding unicast
        between them (never multicast: Linux routes none without a multicast daemon), and a
        route through it on every host.  With ``allow`` (nftables match expressions such as
        ``"tcp dport 3010"``), it forwards only what matches one of them, and replies: the
        firewall between two VLANs.  Returns the router's namespace."""
        with self._lock:
            self._check_open()
            ns = f"{self.prefix}-rt"
            if ns in self._namespaces:
                raise LabError("the lab has a router already")
            self._add_netns(ns)
            for network in networks:
                bridge = BRIDGE if network == 0 else f"br{network}"
                if bridge not in self._bridges:
                    raise LabError(f"no host is on network {network} yet")
                port, iface = f"r{network}", f"eth{network}"
                _run(["ip", "-n", self.bridge_netns, "link", "add", port, "type", "veth", "peer",
                      "name", iface, "netns", ns])  # fmt: skip
                _run(["ip", "-n", self.bridge_netns, "link", "set", port, "addrgenmode", "none"])
                _run(["ip", "-n", self.bridge_netns, "link", "set", port, "master", bridge])
                _run(["ip", "-n", self.bridge_netns, "link", "set", port, "up"])
                _run(["ip", "-n", ns, "addr", "add", f"{_subnet(network)}.254/24", "dev", iface])
                _run(["ip", "-n", ns, "link", "set", iface, "up"])
                self._wait_port_forwarding(port)
            _run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
            if allow:
                rules = "".join(f"    {rule} accept\n" for rule in allow)
                _run(
                    ["ip", "netns", "exec", ns, "nft", "-f", "-"],
                    input_text=(
                        "table ip mwl_router {\n  chain forward {\n"
                        "    type filter hook forward priority 0; policy drop;\n"
                        "    ct state established,related accept\n"
                        f"{rules}  }}\n}}\n"
                    ),
                )
            for host in self._hosts:
                on = host.networks
                for network in networks:
                    if network in on:
                        continue
                    via = next((n for n in on if n in networks), None)
                    if via is None:
                        continue
                    _run(["ip", "-n", host.netns, "route", "replace", f"{_subnet(network)}.0/24",
                          "via", f"{_subnet(via)}.254"])  # fmt: skip
            return ns

    def hosts(self, n: int | None = None) -> list[Host]:
        """The first ``n`` hosts, creating missing ones; all hosts when ``n`` is None."""
        if n is None:
            return list(self._hosts)
        while len(self._hosts) < n:
            self.add_host()
        return self._hosts[:n]

    def host(self, name: str) -> Host:
        for h in self._hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def close(self) -> None:
        """Kill every process in the lab and delete its namespaces.  Idempotent, never raises."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._teardown()
        except Exception as exc:  # never raise from cleanup
            self.cleanup_errors.append(f"teardown: {exc!r}")
        except BaseException:
            # interrupted (^C): let the atexit backstop retry, then propagate
            self._closed = False
            raise
        with _open_labs_lock:
            _open_labs.discard(self)
        for err in self.cleanup_errors:
            log.warning("lab %s cleanup: %s", self.prefix, err)

    async def aclose(self) -> None:
        """:meth:`close` for asyncio code: also reaps processes from :meth:`Host.spawn_async`
        and closes their transports while the event loop still runs (a transport that outlives
        its loop complains at garbage collection).  Never raises (except cancellation).
        """
        await asyncio.to_thread(self.close)
        with self._lock:
            aprocs = list(self._aprocs)
        for proc in aprocs:
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 15.0)  # loaded CI: reaping lags
                transport = getattr(proc, "_transport", None)  # no public way to close it
                if transport is not None:
                    transport.close()
            except Exception as exc:
                self.cleanup_errors.append(f"closing asyncio process {proc.pid}: {exc!r}")

    def _teardown(self) -> None:
        deadline = time.monotonic() + self.close_timeout
        namespaces = list(self._namespaces)
        try:
            survivors = _kill_netns_processes(
                namespaces, self._popens, self.term_grace, deadline - 3.0, self._unreaped
            )
            if survivors:
                self.cleanup_errors.append(f"processes survived SIGKILL: {survivors}")
        except Exception as exc:
            self.cleanup_errors.append(f"killing processes: {exc!r}")
        for p in self._popens:
            with contextlib.suppress(Exception):
                p.wait(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
            for stream in (p.stdin, p.stdout, p.stderr):
                if stream is not None:
                    with contextlib.suppress(Exception):
                        stream.close()
        for table in sorted(self._nft_tables):
            with contextlib.suppress(Exception):
                _run(
                    [
                        "ip",
                        "netns",
                        "exec",
                        self.bridge_netns,
                        "nft",
                        "delete",
                        "table",
                        "bridge",
                        table,
                    ],
                    check=False,
                    timeout=3.0,
                )
        self._nft_tables.clear()
        # hosts first, the bridge namespace (holding every veth) last
        ordered = [ns for ns in namespaces if ns != self.bridge_netns]
        ordered += [ns for ns in namespaces if ns == self.bridge_netns]
        try:
            _delete_netns(ordered, self.cleanup_errors)
        except Exception as exc:
            self.cleanup_errors.append(f"deleting namespaces: {exc!r}")


def _close_open_labs() -> None:
    with _open_labs_lock:
        labs = list(_open_labs)
    for lab in labs:
        lab.close()


atexit.register(_close_open_labs)


def _subnet(network: int) -> str:
    """The first three octets of lab network ``network`` (0: the lab's first)."""
    return f"10.{77 + network}.0"
