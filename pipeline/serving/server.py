"""Start the bundled ``tritonserver`` on loopback ports, wait until it is ready, stop it with nothing left.

    with TritonServer("triton/ranet") as server:   # free ports on 127.0.0.1
        url = server.url                                  # "127.0.0.1:PORT" (HTTP)

The server runs in a process group of its own (its Python-backend stubs are its children), so
stopping it reaches every process it started: SIGTERM to the group, then SIGKILL to the group
after a bounded wait; the stubs' shared-memory regions a kill leaves behind are removed. Its log
goes to a file; when it exits before it is ready, the error is the log's first failure, on one
line (a model that failed to load names itself). Every wait here is bounded.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Sequence

from pipeline.errors import PipelineError
from pipeline.serving.install import ServerInstall, find_server, lay_out_home, server_env

LOOPBACK = "127.0.0.1"
_START_TRIES = 3  # new ports after a port race lost to another process


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` distinct ports free on ``host`` now (held together while drawn, then released)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def http_status(host: str, port: int, path: str, timeout_s: float = 1.0) -> int | None:
    """The HTTP status of GET ``path``, or None where nothing answers within ``timeout_s``."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


_NOISE = re.compile(r"CUDA|NVML|DCGM|cuda|GPU|nvidia|pinned memory", re.I)


def first_failure(log: str) -> str | None:
    """The log's first error, on one line: a model that failed to load first, else the first error line."""
    lines = [ln for ln in log.splitlines() if ln[:1] == "E" and not _NOISE.search(ln)]
    chosen = next((ln for ln in lines if "failed to load" in ln), lines[0] if lines else None)
    if chosen is None:
        return None
    text = chosen.split("] ", 1)[-1].strip().strip('"').replace("\\n", " ")
    return " ".join(text.split())[:600]


class TritonServer:
    """One ``tritonserver`` process serving a model repository on loopback (or ``host``)."""

    def __init__(self, repository: str | Path, *, host: str = LOOPBACK, http_port: int = 0, grpc_port: int = 0,
                 metrics_port: int = 0, log_path: str | Path | None = None, env: dict[str, str] | None = None,
                 exit_timeout_s: int = 2, ready_timeout_s: float = 90.0, extra_args: Sequence[str] = ()):
        """Ports 0: free ones drawn at start. ``env``: added to the server's environment (e.g. a delay for tests).
        ``log_path``: the server's log (default: a file in its temporary home, removed at stop)."""
        self.repository = Path(repository).resolve()
        self.host = host
        self.ports = [http_port, grpc_port, metrics_port]
        self.log_path = Path(log_path) if log_path else None
        self.env = dict(env or {})
        self.exit_timeout_s = exit_timeout_s
        self.ready_timeout_s = ready_timeout_s
        self.extra_args = list(extra_args)
        self._proc: subprocess.Popen[bytes] | None = None
        self._group_ended = False  # stop() or kill() saw the whole group gone: its pid may be another's by now
        self._home: Path | None = None

    @property
    def http_port(self) -> int:
        return self.ports[0]

    @property
    def url(self) -> str:
        """``host:port`` of the HTTP endpoint."""
        return f"{self.host}:{self.http_port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        """The server's log so far ("" before start)."""
        path = self._log_file()
        try:
            return path.read_text(errors="replace") if path is not None else ""
        except OSError:
            return ""

    def _log_file(self) -> Path | None:
        return self.log_path or (self._home / "server.log" if self._home else None)

    def start(self) -> "TritonServer":
        """Start and wait until ready (bounded); a PipelineError with the server's first failure otherwise."""
        if not self.repository.is_dir():
            raise PipelineError(f"no model repository at {self.repository}; write one with `anytime triton repo`")
        install = find_server()
        fixed = list(self.ports)
        for attempt in range(_START_TRIES):
            if self._home is None:
                self._home = Path(tempfile.mkdtemp(prefix="anytime-triton-"))
            backends = lay_out_home(install, self._home)
            drawn = iter(free_ports(3, self.host))
            self.ports = [p if p else next(drawn) for p in fixed]
            self._launch(backends, install)
            try:
                self._wait_ready()
                return self
            except PipelineError as exc:
                log = self.log()
                self.stop(keep_home=True)
                raced = "already in use" in log or "Address in use" in log or "Failed to start" in log
                if not raced or attempt == _START_TRIES - 1 or all(fixed):
                    self._remove_home()
                    raise exc
        raise AssertionError("unreachable")

    def _launch(self, backends: Path, install: ServerInstall) -> None:
        http, grpc, metrics = self.ports
        args = [str(install.binary), f"--model-repository={self.repository}", f"--backend-directory={backends}",
                f"--http-address={self.host}", f"--http-port={http}", f"--grpc-address={self.host}",
                f"--grpc-port={grpc}", f"--metrics-address={self.host}", f"--metrics-port={metrics}",
                f"--exit-timeout-secs={self.exit_timeout_s}", "--strict-readiness=true",
                "--disable-auto-complete-config",
                "--backend-config=python,shm-default-byte-size=8388608",
                "--backend-config=python,shm-growth-byte-size=8388608", *self.extra_args]
        path = self._log_file()
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as log:
            self._group_ended = False
            self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          env=server_env(install, self.env), start_new_session=True)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                code = self._proc.returncode if self._proc else "?"
                why = first_failure(self.log()) or f"it exited with status {code}"
                raise PipelineError(f"the Triton server for {self.repository} stopped before it was ready: {why}")
            if http_status(self.host, self.http_port, "/v2/health/ready", 0.5) == 200:
                return
            time.sleep(0.1)
        failure = first_failure(self.log())
        raise PipelineError(f"the Triton server for {self.repository} was not ready within {self.ready_timeout_s:.0f} s"
                            + (f": {failure}" if failure else "; see its log"))

    def _group_members(self) -> list[int]:
        """Live (not zombie) processes of the group this server leads: itself and its backend stubs."""
        if self._proc is None:
            return []
        members = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == self._proc.pid and fields[0] not in ("Z", "X"):
                members.append(int(entry.name))
        return members

    def _wait_group_gone(self, timeout_s: float = 10.0) -> None:
        """Wait, bounded, until no process of the group is left: a SIGKILLed stub takes a moment to exit."""
        deadline = time.monotonic() + timeout_s
        while self._group_members() and time.monotonic() < deadline:
            time.sleep(0.05)

    def _end_group(self, regions: set[str]) -> None:
        """SIGKILL what is left of the group, wait (bounded) until none of it is, and unlink the shared-memory
        ``regions`` its stubs named (what stubs killed before their clean-up left in /dev/shm)."""
        assert self._proc is not None
        self._signal_group(signal.SIGKILL)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._wait_group_gone()
        self._group_ended = self._proc.poll() is not None and not self._group_members()
        self._unlink_regions(regions)

    def _shm_regions(self) -> set[str]:
        """The shared-memory regions of this server's stubs (named on their command lines), to unlink after a kill."""
        regions: set[str] = set()
        for pid in self._group_members():
            try:
                args = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            regions.update(a.decode(errors="replace") for a in args
                           if a.startswith(b"triton_python_backend_shm_region"))
        return regions

    def _unlink_regions(self, regions: set[str]) -> None:
        for name in regions:
            try:
                os.unlink(Path("/dev/shm") / name)
            except OSError:
                pass  # the server removed it, or it was never made

    def _signal_group(self, sig: int) -> None:
        if self._proc is not None and not self._group_ended:
            try:
                os.killpg(self._proc.pid, sig)  # the group this server leads: itself and its stubs
            except (ProcessLookupError, PermissionError):
                pass

    def kill(self) -> None:
        """SIGKILL the server and its stubs at once (a crash, for fault tests); ``start`` may follow."""
        if self._proc is not None and not self._group_ended:
            self._end_group(self._shm_regions())

    def stop(self, keep_home: bool = False) -> None:
        """SIGTERM the group, SIGKILL it after a bounded wait, return once none of it is left (bounded); idempotent:
        a stopped server's process id is never signalled again."""
        proc = self._proc
        if proc is not None and not self._group_ended:
            regions = self._shm_regions()
            if proc.poll() is None:
                self._signal_group(signal.SIGTERM)
                try:
                    proc.wait(timeout=self.exit_timeout_s + 5)
                except subprocess.TimeoutExpired:
                    pass
            self._end_group(regions)  # stubs still shutting down, or a server that did not stop
        if not keep_home:
            self._remove_home()

    def _remove_home(self) -> None:
        if self._home is not None:
            shutil.rmtree(self._home, ignore_errors=True)
            self._home = None

    def __enter__(self) -> "TritonServer":
        if not self.alive():
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
