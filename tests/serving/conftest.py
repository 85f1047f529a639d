"""The tiny model built once, its Triton repository, and the bundled server started on free loopback ports.

The server fixtures skip, saying why, only where the ``nvidia-pytriton`` wheel (which carries the
server) is not installed. Every server is stopped on teardown with its process group, and the
teardown checks that no process of that group is left.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers import tiny_build


def processes_in_group(pgid: int) -> list[int]:
    """Live (not zombie) processes whose process group is ``pgid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            found.append(int(entry.name))
    return found


def need_server() -> None:
    """Skip where the bundled server is not installed; prepare its numpy 1.x folder once where it is."""
    from pipeline.serving.install import prepare_site, server_available, server_site_needed

    why = server_available()
    if why is not None:
        pytest.skip(f"the Triton server is not installed here ({why})")
    if server_site_needed():
        prepare_site()


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    return tiny_build(tmp_path_factory)


@pytest.fixture(scope="session")
def repo(tiny, tmp_path_factory):
    from pipeline.serving.repository import write_repository

    out = tmp_path_factory.mktemp("triton") / "repository"
    write_repository(tiny.folder, out)
    return out


@pytest.fixture(scope="session")
def manifest(tiny):
    from pipeline.manifest import load_manifest

    return load_manifest(tiny.folder)


@pytest.fixture(scope="session")
def frames(manifest):
    h, w = manifest.input.size
    return np.random.default_rng(0).integers(0, 256, size=(12, h, w, 3), dtype=np.uint8)


def started(repository: Path, **kw):
    """A started TritonServer; the caller stops it (``stop_checked``)."""
    from pipeline.serving.server import TritonServer

    need_server()
    server = TritonServer(repository, **kw)
    server.start()
    return server


def stop_checked(server) -> None:
    """Stop ``server`` and fail if any process of its group is left."""
    pid = server.pid
    server.stop()
    if pid is not None:
        assert processes_in_group(pid) == [], f"processes of the server's group left: {processes_in_group(pid)}"


@pytest.fixture(scope="session")
def server(repo):
    srv = started(repo)
    yield srv
    stop_checked(srv)


@pytest.fixture
def own_server(repo):
    """A server of the test's own (to kill, restart or slow down); stopped, group checked, after the test."""
    made = []

    def start(repository: Path | None = None, **kw):
        srv = started(repository or repo, **kw)
        made.append(srv)
        return srv

    yield start
    for srv in made:
        stop_checked(srv)
