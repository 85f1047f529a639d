"""The build's folder transaction: a temporary folder next to the destination, renamed into place when complete.

An interrupted build leaves the previous folder as it was; the leftovers of a build that died are
cleaned up (or the previous folder put back) by the next one. ``build.json`` beside the manifest
records the build key, so a rerun with nothing changed stops at "up to date". One build at a time
writes an output folder: :func:`build_lock` holds an advisory lock on ``<out>/.build.lock`` for
the whole build, and a second build is refused instead of racing the first through the swap.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

from pipeline.errors import PipelineError
from pipeline.files import atomic_write_text, hold_lock, process_alive, remove_dead_temps
from pipeline.manifest import load_manifest

BUILD_INFO = "build.json"  # next to the manifest: what the folder was built from, for "up to date"
LOCK_NAME = ".build.lock"  # in the output folder: held by the build writing it
TEMP_MARKER = ".anytime-build"  # in a build's temporary folder: the process id of the build that made it


@contextlib.contextmanager
def build_lock(out: Path) -> Iterator[None]:
    """Hold the output folder's build lock (:func:`pipeline.files.hold_lock` on ``<out>/.build.lock``): a
    PipelineError naming the holder when another build, profiler or calibration has it; a lock file that
    is a symbolic link is refused, never followed. The folders it makes for ``out`` are removed again where
    the build left them empty (it failed before it wrote a model)."""
    made: list[Path] = []  # the folders this call made, one level at a time: only those are removed again
    for folder in reversed((out, *out.parents)):  # as given: "new/../old" makes new, never counts old as made
        try:
            folder.mkdir()
            made.insert(0, folder)  # the deepest first
        except FileExistsError:
            continue
        except OSError:
            break  # told by the mkdir below
    out.mkdir(parents=True, exist_ok=True)
    try:
        with hold_lock(out / LOCK_NAME, f"{out} is in use by another process{{who}}; wait for it to finish, or "
                                        "build into another --out", "a build"):
            yield
    finally:
        for folder in made:
            try:
                folder.rmdir()  # only while empty
            except OSError:
                break


@contextlib.contextmanager
def model_lock(model: Path, holder: str) -> Iterator[None]:
    """The lock of the folder a model was built into, held by whatever rewrites its manifest (``holder``: the
    profiler, the temporal calibration): the same lock as the build's, so none of them runs while another does."""
    model = Path(os.path.abspath(model))
    if not model.parent.is_dir():  # nothing there to protect: loading the manifest tells the mistake
        yield
        return
    with hold_lock(model.parent / LOCK_NAME, f"{model} is in use by another process{{who}}; wait for it to finish "
                                             "and run this again", holder):
        yield


def _marked_by(path: Path) -> int | None:
    """The process id in the marker a build wrote into its temporary folder ``path``, or None."""
    try:
        if path.is_symlink() or not path.is_dir():
            return None
        text = (path / TEMP_MARKER).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def remove_stale_temps(out: Path) -> None:
    """Clean up after builds that died (their process is gone); a running build's folders are left alone.

    ``.<name>.tmp-<pid>`` holding the marker a build wrote (:data:`TEMP_MARKER`, with that pid) is an
    unfinished build: deleted. ``.<name>.old-<pid>`` holding a build's ``build.json`` is a previous build
    set aside for the swap: put back if the swap never completed, deleted otherwise (a link: unlinked).
    Anything else with such a name is not ours and is left alone.
    """
    remove_dead_temps(out)  # files an atomic write of a killed build left
    for path in out.glob(".*-*"):
        stem, _, pid = path.name.rpartition("-")
        if not pid.isdigit() or process_alive(int(pid)):
            continue  # not one of ours, or still running
        if stem.endswith(".tmp") and _marked_by(path) == int(pid):
            shutil.rmtree(path, ignore_errors=True)
        elif stem.endswith(".old") and (path / BUILD_INFO).is_file():
            if not os.path.lexists(out / stem[1:-4]):
                os.rename(path, out / stem[1:-4])
            elif path.is_symlink():
                path.unlink()
            else:
                shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def temporary_folder(out: Path, name: str) -> Iterator[Path]:
    """A fresh ``out/.<name>.tmp-<pid>`` with its marker, removed on the way out whatever happened."""
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)
    tmp = out / f".{name or 'build'}.tmp-{os.getpid()}"
    if tmp.is_symlink():
        tmp.unlink()
    elif _marked_by(tmp) == os.getpid():
        shutil.rmtree(tmp)
    tmp.mkdir()  # one that is not ours (no marker) stops the build here instead of being deleted
    atomic_write_text(tmp / TEMP_MARKER, f"{os.getpid()}\n")
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def swap_into_place(tmp: Path, dest: Path, key: dict[str, Any]) -> None:
    """Record ``key``, verify what the runtime will check, then rename ``tmp`` to ``dest``; the previous
    ``dest`` is kept until the rename succeeded."""
    atomic_write_text(tmp / BUILD_INFO, json.dumps(key, indent=2) + "\n")
    load_manifest(tmp, verify=True)  # checked before it is in place
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    if os.path.lexists(dest):
        os.rename(dest, old)
    try:
        os.rename(tmp, dest)
    except BaseException:  # an OSError, or a signal between the two renames: the previous build goes back
        if os.path.lexists(old) and not os.path.lexists(dest):
            os.rename(old, dest)
        raise
    (dest / TEMP_MARKER).unlink()  # a model folder now, no longer a temporary
    if old.is_symlink():  # a model folder that was a link: the link goes, what it pointed to stays
        old.unlink()
    else:
        shutil.rmtree(old, ignore_errors=True)


def dropped_tables(dest: Path) -> str | None:
    """What a rebuild of ``dest`` leaves behind of the previous build's measured tables (latency, exit
    thresholds, temporal settings: measured on the old engines, not valid for new ones), and the commands
    that remake them; None when the previous build had none."""
    try:
        previous = load_manifest(dest, verify=False)
    except (OSError, ValueError, PipelineError):
        return None
    lost = [f"{name} ({', '.join(sorted(table))})" for name, table in
            (("latency", previous.latency), ("thresholds", previous.thresholds), ("temporal", previous.temporal))
            if table]
    if not lost:
        return None
    remake = f"`anytime profile --engines {dest}`" + (f", then `anytime temporal --engines {dest}`"
                                                      if previous.temporal else "")
    return (f"the rebuilt engines of {dest} have none of the previous build's measured tables: "
            f"{'; '.join(lost)} were dropped (measured on the old engines); remake them with {remake}")


def previous_build(out: Path, name: str, identity: dict[str, Any]) -> Path | None:
    """The model folder an earlier build of the same source wrote: ``out/name``, or found by its build info."""
    if name:
        return out / name
    for info in sorted(out.glob(f"*/{BUILD_INFO}")):
        if info.parent.name.startswith("."):
            continue  # a temporary folder, never a model
        try:
            if json.loads(info.read_text()).get("source") == identity:
                return info.parent
        except (OSError, ValueError, AttributeError):
            continue
    return None


def up_to_date(dest: Path, key: dict[str, Any]) -> bool:
    info = dest / BUILD_INFO
    if not info.is_file():
        return False
    try:
        if json.loads(info.read_text()) != key:
            return False
        load_manifest(dest, verify=True)
    except (OSError, ValueError, PipelineError):
        return False
    return True
