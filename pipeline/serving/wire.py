"""The KServe v2 inference protocol over HTTP, binary tensors, one keep-alive connection, a timeout per request.

    conn = Connection("127.0.0.1:8000")
    outs = conn.infer("stage1", {"frame": frame}, ["logits_1", "stage1_map0"], timeout_s=0.012)

Why not ``tritonclient.http``: its client sets timeouts per client, not per request, and runs on
gevent, whose hub belongs to one thread; a camera's request must give up at its frame's deadline,
and cameras run in threads. The protocol is small: a JSON header (its length in the
``Inference-Header-Content-Length`` header) followed by each tensor's raw bytes, both ways. A
request may also carry ``timeout`` (microseconds): the server rejects it if it is still queued
then (the model's queue policy must allow the override, as the repository's configurations do).

Failures are typed: :class:`ServerUnavailable` (nothing answers: refused, reset, closed),
:class:`RequestTimedOut` (no answer within the request's timeout), :class:`ServerError` (an
answer that is an error) and :class:`NotSent` (a client's own decision not to send). After any
failure the connection is dropped and the next request opens
a new one, so a restarted server is picked up by the next request.
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit

import numpy as np

from pipeline.errors import PipelineError
from pipeline.serving.configs import DTYPES, WIRE_TO_NUMPY


class RemoteFailure(Exception):
    """A request that got no usable answer."""


class ServerUnavailable(RemoteFailure):
    """Nothing answers at the address (refused, reset, closed mid-answer)."""


class RequestTimedOut(RemoteFailure):
    """No answer within the request's timeout."""


class ServerError(RemoteFailure):
    """The server answered with an error (a missing model, a wrong input, a rejected late request)."""


class NotSent(RemoteFailure):
    """Not sent: the answer was predicted to come after the deadline (the client sheds load)."""


def split_url(url: str) -> tuple[str, int]:
    """``host:port`` or ``http://host:port`` -> (host, port); a PipelineError for anything else."""
    parts = urlsplit(url if "//" in url else f"http://{url}")
    try:
        port = parts.port  # a ValueError for a port that is not a number from 0 to 65535
    except ValueError:
        port = None
    if parts.scheme != "http" or not parts.hostname or not port or parts.path not in ("", "/"):
        raise PipelineError(f"expected a server address like 127.0.0.1:8000 (its HTTP port, 1 to 65535), got {url!r}")
    return parts.hostname, port


def encode(inputs: Mapping[str, np.ndarray], outputs: Sequence[str], timeout_us: int = 0
           ) -> tuple[bytes, int]:
    """(request body, JSON header length) for ``inputs`` sent and ``outputs`` asked for, all binary."""
    tensors, blobs = [], []
    for name, arr in inputs.items():
        arr = np.ascontiguousarray(arr)
        wire = DTYPES.get(arr.dtype.name)
        if wire is None:
            raise PipelineError(f"input {name} has dtype {arr.dtype}, which the protocol here does not carry")
        tensors.append({"name": name, "shape": list(arr.shape), "datatype": wire[1],
                        "parameters": {"binary_data_size": arr.nbytes}})
        blobs.append(arr.data)
    header: dict[str, Any] = {"inputs": tensors,
                              "outputs": [{"name": n, "parameters": {"binary_data": True}} for n in outputs]}
    if timeout_us > 0:
        header["parameters"] = {"timeout": int(timeout_us)}
    head = json.dumps(header, separators=(",", ":")).encode()
    return b"".join([head, *blobs]), len(head)


def decode(body: bytes, header_length: int | None) -> dict[str, np.ndarray]:
    """A response body -> its output tensors by name (views into ``body``)."""
    n = len(body) if header_length is None else header_length
    header = json.loads(body[:n])
    out, offset = {}, n
    for t in header.get("outputs", []):
        dtype = np.dtype(WIRE_TO_NUMPY[t["datatype"]])
        shape = [int(d) for d in t["shape"]]
        size = (t.get("parameters") or {}).get("binary_data_size")
        if size is None:
            out[t["name"]] = np.asarray(t["data"], dtype=dtype).reshape(shape)
            continue
        flat = np.frombuffer(body, dtype=dtype, count=int(size) // dtype.itemsize, offset=offset)
        out[t["name"]] = flat.reshape(shape)
        offset += int(size)
    return out


class Connection:
    """One persistent HTTP connection to a server; not shared between threads (one per camera)."""

    def __init__(self, url: str, connect_timeout_s: float = 1.0):
        self.host, self.port = split_url(url)
        self.url = f"{self.host}:{self.port}"
        self.connect_timeout_s = connect_timeout_s
        self._conn: http.client.HTTPConnection | None = None
        self.bytes_sent = 0
        self.bytes_received = 0

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _request(self, method: str, path: str, body: bytes | None, headers: dict[str, str], timeout_s: float
                 ) -> tuple[int, bytes, http.client.HTTPResponse]:
        if timeout_s <= 0:
            raise RequestTimedOut(f"no time left for {path}")
        for attempt in (0, 1):
            fresh = self._conn is None
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port,
                                                        timeout=min(timeout_s, self.connect_timeout_s))
            conn = self._conn
            try:
                if conn.sock is None:
                    conn.connect()
                conn.sock.settimeout(timeout_s)
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.bytes_sent += len(body or b"")
                self.bytes_received += len(data)
                if resp.getheader("Connection", "").lower() == "close":
                    self.close()
                return resp.status, data, resp
            except (socket.timeout, TimeoutError):
                self.close()
                raise RequestTimedOut(f"no answer from {self.url} to {path} within {timeout_s * 1e3:.1f} ms") from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if fresh or attempt:  # a reused connection may be one the server closed: retry once on a new one
                    raise ServerUnavailable(f"nothing answers at {self.url} ({_why(exc)})") from None
        raise AssertionError("unreachable")

    def get_json(self, path: str, timeout_s: float = 2.0, method: str = "GET") -> tuple[int, Any]:
        """(status, parsed JSON body) of ``method path`` (no body sent); the body is None where it is not JSON."""
        status, data, _ = self._request(method, path, b"" if method == "POST" else None, {}, timeout_s)
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            return status, None

    def infer(self, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str], timeout_s: float,
              server_timeout_us: int = 0) -> dict[str, np.ndarray]:
        """Run ``model`` on ``inputs``; its ``outputs`` by name, or a RemoteFailure."""
        body, head = encode(inputs, outputs, server_timeout_us)
        headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(head)}
        status, data, resp = self._request("POST", f"/v2/models/{model}/infer", body, headers, timeout_s)
        if status != 200:
            try:
                message = json.loads(data).get("error", "")
            except (ValueError, AttributeError):
                message = data[:200].decode(errors="replace")
            text = " ".join(str(message).split())
            if status == 503 and "timeout" in text.lower():  # the model's queue rejected it past its timeout
                raise RequestTimedOut(f"{model}: {text} (the server dropped it from its queue)")
            raise ServerError(f"{model}: {text} (HTTP {status})")
        length = resp.getheader("Inference-Header-Content-Length")
        try:
            return decode(data, int(length) if length is not None else None)
        except (ValueError, KeyError, TypeError) as exc:
            raise ServerError(f"{model}: an answer that does not parse ({exc})") from None


def _why(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)):
        return "connection closed by the server"
    return " ".join(str(exc).split()) or type(exc).__name__
