"""Serve a model repository with the bundled Triton server, after checking it.

    anytime triton serve --repo triton/ranet [--http-port 8000] [--seconds S]

The check comes first and fails in one line naming the model: a stage model missing, a
configuration Triton's schema refuses, a stage whose inputs are not what the stage before it
writes, a Python stage whose ONNX graph differs from its configuration, a model file missing.
The server then runs until Ctrl-C or SIGTERM (or ``--seconds``), and stops with its stubs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError, cli_main
from pipeline.serving.configs import Tensor, config_tensors, parse_config
from pipeline.serving.repository import RECORD

WRITE_AGAIN = "write it again with `anytime triton repo`"


def _describe(t: Tensor | None, name: str) -> str:
    return f"{list(t.dims)} {t.dtype}" if t is not None else f"no tensor {name}"


def _tensors(items: list[dict[str, Any]]) -> list[Tensor]:
    return [Tensor(t["name"], t["dtype"], tuple(t["dims"])) for t in items]


def _graph_tensors(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """A stage graph's inputs and outputs: name -> (dtype, dims after the batch axis, -1 where symbolic)."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path), load_external_data=False)
    out = {}
    for v in list(model.graph.input) + list(model.graph.output):
        dims = tuple(int(d.dim_value) if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim)
        out[v.name] = (helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name, dims[1:])
    return out


def check_repository(folder: str | Path) -> dict[str, Any]:
    """The repository's record, once every model in it is whole and agrees with its neighbours; else one line."""
    folder = Path(folder)
    try:
        rec = json.loads((folder / RECORD).read_text())
        stages = rec["stages"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        raise PipelineError(f"{folder} is not a model repository written by `anytime triton repo` (no readable "
                            f"{RECORD}); write one with `anytime triton repo --engines ... --out {folder}`") from None
    carried: list[Tensor] | None = None
    for k, stage in enumerate(stages, start=1):
        name = stage["model"]
        config_path = folder / name / "config.pbtxt"
        if not config_path.is_file():
            raise PipelineError(f"the model repository {folder} lacks {name} (stage {k} of {len(stages)}: no "
                                f"{name}/config.pbtxt); {WRITE_AGAIN}")
        config = parse_config(config_path.read_text(), str(config_path))
        if config.name != name:
            raise PipelineError(f"{config_path} names the model {config.name!r}, expected {name!r}; {WRITE_AGAIN}")
        inputs, outputs = config_tensors(config, "input"), config_tensors(config, "output")
        want_in = carried if carried is not None else _tensors(stage["inputs"])
        for kind, have, want in (("input", inputs, want_in), ("output", outputs, _tensors(stage["outputs"]))):
            by_name = {t.name: t for t in have}
            for w in want:
                got = by_name.get(w.name)
                if got is None or (got.dtype, got.dims) != (w.dtype, w.dims):
                    source = f"stage {k - 1} writes" if kind == "input" and carried is not None else "the model needs"
                    raise PipelineError(f"the model repository's {name} has {kind} {w.name} {_describe(got, w.name)}, "
                                        f"but {source} {list(w.dims)} {w.dtype}; {WRITE_AGAIN}")
        version = folder / name / "1"
        if config.platform == "tensorrt_plan":
            if not (version / "model.plan").is_file():
                raise PipelineError(f"the model repository's {name} has no plan ({version / 'model.plan'}); "
                                    f"{WRITE_AGAIN}")
        else:
            for file in ("model.py", "model.onnx"):
                if not (version / file).is_file():
                    raise PipelineError(f"the model repository's {name} lacks {version / file}; {WRITE_AGAIN}")
            graph = _graph_tensors(version / "model.onnx")
            for t in inputs + outputs:
                dtype, dims = graph.get(t.name, ("", ()))
                if dtype != t.dtype or len(dims) != len(t.dims) or any(a >= 0 and a != b for a, b in zip(dims, t.dims)):
                    found = f"{list(dims)} {dtype}" if dtype else f"no tensor {t.name}"
                    raise PipelineError(f"the model repository's {name}: its configuration says {t.name} is "
                                        f"{list(t.dims)} {t.dtype}, its graph model.onnx has {found}; {WRITE_AGAIN}")
        carried = outputs[1:]
    cascade = rec.get("cascade")
    if cascade and not (folder / cascade / "1" / "cascade.json").is_file():
        raise PipelineError(f"the model repository {folder} lacks its {cascade} model ({cascade}/1/cascade.json); "
                            f"{WRITE_AGAIN}")
    if cascade:
        parse_config((folder / cascade / "config.pbtxt").read_text(), str(folder / cascade / "config.pbtxt"))
    return rec


def check_listen_address(host: str) -> None:
    """A one-line PipelineError where this machine cannot listen on ``host``: a name that does not resolve, or
    an address that is not one of its own."""
    import socket

    if not host.strip():
        raise PipelineError("--host is empty; use 127.0.0.1, or 0.0.0.0 for every interface")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
    except (OSError, UnicodeError) as exc:  # socket.gaierror is an OSError
        raise PipelineError(f"--host {host} is not an address this machine can listen on "
                            f"({(exc.strerror or str(exc)).lower() if isinstance(exc, OSError) else exc}); "
                            "use 127.0.0.1, or 0.0.0.0 for every interface") from None


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="anytime triton serve", description=__doc__.split("\n")[0])
    ap.add_argument("--repo", type=Path, required=True, help="a repository written by `anytime triton repo`")
    ap.add_argument("--host", default="127.0.0.1", help="the address to listen on (0.0.0.0: every interface)")
    ap.add_argument("--http-port", type=int, default=8000, help="0: a free port")
    ap.add_argument("--grpc-port", type=int, default=8001, help="0: a free port")
    ap.add_argument("--metrics-port", type=int, default=8002, help="0: a free port")
    ap.add_argument("--seconds", type=float, default=None, help="stop after this long (default: at Ctrl-C)")
    ap.add_argument("--log", type=Path, default=None, help="the server's log file (default: a temporary one)")
    return ap


@cli_main
def main(argv: list[str] | None = None) -> int:
    from pipeline.serving.server import TritonServer, first_failure
    from pipeline.stop import StopFlag

    args = build_parser().parse_args(argv)
    if args.seconds is not None and not args.seconds > 0:
        raise PipelineError(f"--seconds should be a positive number, got {args.seconds}")
    for option in ("--http-port", "--grpc-port", "--metrics-port"):
        port = getattr(args, option[2:].replace("-", "_"))
        if not 0 <= port <= 65535:
            raise PipelineError(f"{option} should be a port from 1 to 65535 (0: a free one), got {port}")
    check_listen_address(args.host)
    if args.log is not None:
        from pipeline.files import check_output

        check_output(args.log, "--log", [("--repo", args.repo)])
    rec = check_repository(args.repo)
    server = TritonServer(args.repo, host=args.host, http_port=args.http_port, grpc_port=args.grpc_port,
                          metrics_port=args.metrics_port, log_path=args.log)
    stop = StopFlag()
    stop.install()
    try:
        server.start()
        print(f"serving {args.repo} ({rec['variant']}, {len(rec['stages'])} stage models and {rec.get('cascade')}) at "
              f"{server.url} (HTTP; gRPC port {server.ports[1]}, metrics port {server.ports[2]}); Ctrl-C stops it",
              flush=True)
        end = None if args.seconds is None else time.monotonic() + args.seconds
        while stop.reason is None and (end is None or time.monotonic() < end):
            if not server.alive():
                why = first_failure(server.log()) or "it exited"
                raise PipelineError(f"the Triton server stopped: {why}")
            time.sleep(0.2)
    finally:
        server.stop()
        stop.restore()
    print("stopped", flush=True)
    return stop.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
