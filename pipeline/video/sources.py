"""What ``--source`` names, and how OpenCV opens it.

    0, /dev/video0                  V4L2 camera (USB)
    csi://0[?width=&height=&fps=&flip=]   Jetson CSI camera: nvarguscamerasrc through GStreamer
    rtsp://[user:pass@]host/path    network stream through FFmpeg (TCP, low latency)
    http(s)://...                   network stream (MJPEG, HLS, ...) through FFmpeg
    clip.mp4                        a video file, every frame in order
    frames/, 'frames/*.png'         a folder or glob of images, in natural order (2 before 10)

Parsing is pure string work (testable anywhere); :func:`open_capture` does the opening and turns
OpenCV's silent failures into errors that say what to check. Every name that reaches a log, the
overlay or an error goes through :func:`redact`, so stream credentials are never printed.
"""

from __future__ import annotations

import glob
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qsl, urlsplit

from pipeline.errors import PipelineError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pnm")
LIVE_KINDS = ("v4l2", "csi", "gstreamer", "stream")

# FFmpeg options for RTSP, in OpenCV's "key;value|key;value" syntax: TCP avoids the smeared frames
# that lost UDP packets give; no input buffering and low delay keep the newest frame fresh.
RTSP_FFMPEG_OPTIONS = "rtsp_transport;tcp|fflags;nobuffer|flags;low_delay|max_delay;500000"

CSI_DEFAULTS = {"width": 1280, "height": 720, "fps": 30, "flip": 0}
CSI_FLIPS = 8  # nvvidconv's flip-method: 0 to 7
_DIGITS = re.compile(r"[0-9]+")  # ASCII digits only: str.isdigit also takes "²", which int() refuses

_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s?#]*@")
_SECRET_QUERY = re.compile(
    r"(?P<key>[?&;](?:password|passwd|pwd|pass|user|username|token|access_token|api_key|apikey|key|"
    r"secret|auth|sig|signature)=)[^&;#\s]*", re.IGNORECASE)


def redact(text: str) -> str:
    """Hide credentials in any text that may hold a URL: ``rtsp://user:pass@host`` -> ``rtsp://***@host``.

    Also blanks secret-looking query parameters (``?token=...`` -> ``?token=***``).
    """
    text = _USERINFO.sub(r"\g<scheme>***@", text)
    return _SECRET_QUERY.sub(r"\g<key>***", text)


@dataclass(frozen=True)
class SourceSpec:
    """A parsed ``--source``: what to open, how, and the name to show for it."""

    kind: str  # "v4l2" | "csi" | "gstreamer" | "stream" | "file" | "images"
    target: int | str  # what cv2.VideoCapture opens: device index or path, pipeline, URL, file
    name: str  # redacted, for logs, the overlay and errors
    paths: tuple[str, ...] = ()  # the images, in order (kind "images")
    ffmpeg_options: str | None = None  # OPENCV_FFMPEG_CAPTURE_OPTIONS while opening (rtsp)
    options: dict[str, Any] = field(default_factory=dict)  # e.g. the CSI size and rate

    @property
    def live(self) -> bool:
        """Live sources are read by a latest-frame thread; files and images in order."""
        return self.kind in LIVE_KINDS


def csi_pipeline(sensor_id: int, width: int = 1280, height: int = 720, fps: int = 30, flip: int = 0) -> str:
    """The GStreamer pipeline for a Jetson CSI camera, ending in BGR frames for OpenCV.

    The ISP writes NV12 into NVMM (GPU) memory; nvvidconv copies it out as BGRx (the hardware
    converter cannot produce 3-channel BGR); videoconvert drops the x. The appsink keeps one
    buffer and drops older ones, so a slow reader always gets the newest frame, not a queue.
    """
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} ! "
        f"video/x-raw(memory:NVMM), width=(int){width}, height=(int){height}, "
        f"framerate=(fraction){fps}/1, format=(string)NV12 ! "
        f"nvvidconv flip-method={flip} ! "
        f"video/x-raw, width=(int){width}, height=(int){height}, format=(string)BGRx ! "
        f"videoconvert ! video/x-raw, format=(string)BGR ! "
        f"appsink drop=true max-buffers=1 sync=false"
    )


def _natural_key(path: str) -> list[Any]:
    """Sort key under which ``frame2.png`` comes before ``frame10.png``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path)]


def _images_in(paths: list[str]) -> tuple[str, ...]:
    return tuple(sorted((p for p in paths if p.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(p)),
                        key=_natural_key))


def _parse_csi(text: str) -> SourceSpec:
    parts = urlsplit(text)
    if not _DIGITS.fullmatch(parts.netloc):
        raise PipelineError(f"CSI source {text!r} should name a sensor id, "
                            "e.g. csi://0 or csi://1?width=1920&height=1080")
    opts = dict(CSI_DEFAULTS)
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in opts:
            raise PipelineError(f"CSI source {text!r}: unknown option {key!r}; expected some of {sorted(opts)}")
        if not _DIGITS.fullmatch(value) or (key != "flip" and int(value) == 0):
            raise PipelineError(f"CSI source {text!r}: {key}={value!r} should be a positive integer")
        if key == "flip" and int(value) >= CSI_FLIPS:
            raise PipelineError(f"CSI source {text!r}: flip={value} should be 0 to {CSI_FLIPS - 1} (nvvidconv's "
                                "flip-method)")
        opts[key] = int(value)
    sensor = int(parts.netloc)
    return SourceSpec("csi", csi_pipeline(sensor, **opts), f"csi://{sensor}", options={"sensor_id": sensor, **opts})


def parse_source(text: str) -> SourceSpec:
    """Turn a ``--source`` string into a :class:`SourceSpec`; files, folders and globs must exist."""
    text = text.strip()
    if not text:
        raise PipelineError("--source is empty; expected a camera (0, /dev/video0, csi://0), a stream "
                            "(rtsp://..., http://...), a video file, or a folder or glob of images")
    if _DIGITS.fullmatch(text):
        return SourceSpec("v4l2", int(text), f"/dev/video{text}")
    if re.fullmatch(r"/dev/video\d+", text):
        return SourceSpec("v4l2", text, text)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme == "csi":
        return _parse_csi(text)
    if scheme in ("rtsp", "rtsps"):
        return SourceSpec("stream", text, redact(text), ffmpeg_options=RTSP_FFMPEG_OPTIONS)
    if scheme in ("http", "https"):
        return SourceSpec("stream", text, redact(text))
    if scheme:
        raise PipelineError(f"source {redact(text)!r}: unknown scheme {scheme!r}; expected csi://, rtsp://, "
                            "rtsps://, http:// or https://")
    if " ! " in text and "appsink" in text:  # a hand-written GStreamer pipeline
        return SourceSpec("gstreamer", text, redact(text))
    if os.path.isdir(text):
        paths = _images_in([str(p) for p in Path(text).iterdir()])
        if not paths:
            raise PipelineError(f"folder {text!r} holds no images ({', '.join(IMAGE_EXTENSIONS)}); for images in "
                                f"subfolders pass a glob such as '{text.rstrip('/')}/**/*.png' (quoted)")
        return SourceSpec("images", "", text, paths=paths)
    if os.path.isfile(text):
        if text.lower().endswith(IMAGE_EXTENSIONS):
            return SourceSpec("images", "", text, paths=(text,))
        return SourceSpec("file", text, text)
    if any(ch in text for ch in "*?["):
        paths = _images_in(glob.glob(text, recursive=True))
        if not paths:
            raise PipelineError(f"the glob {text!r} matches no images ({', '.join(IMAGE_EXTENSIONS)})")
        return SourceSpec("images", "", text, paths=paths)
    raise PipelineError(f"source {text!r} is not a camera, stream, existing file, folder or glob. Expected "
                        "0 or /dev/video0 (V4L2), csi://0 (Jetson CSI), rtsp://host/path, http(s)://..., "
                        "a video file, or a folder or glob of images")


def video_backends(build_info: str | None = None) -> dict[str, bool]:
    """Which video I/O backends this OpenCV was built with, from ``cv2.getBuildInformation()``."""
    if build_info is None:
        import cv2

        build_info = cv2.getBuildInformation()
    found = {}
    for name in ("GStreamer", "FFMPEG", "v4l/v4l2"):
        m = re.search(rf"^\s*{re.escape(name)}:\s*(\S+)", build_info, re.MULTILINE)
        found[name] = bool(m and m.group(1).upper() == "YES")
    return found


def _opencv_origin() -> str:
    import cv2

    return f"OpenCV {cv2.__version__} from {os.path.dirname(cv2.__file__ or '?')}"


CHECK_BUILD = "python3 -c \"import cv2; print(cv2.getBuildInformation())\" | grep -iA1 -E 'gstreamer|ffmpeg'"


def require_gstreamer(source_name: str, build_info: str | None = None) -> None:
    """Refuse plainly where OpenCV cannot run a GStreamer pipeline (it would just fail to open)."""
    if video_backends(build_info)["GStreamer"]:
        return
    raise PipelineError(
        f"{source_name} needs OpenCV built with GStreamer, and this one has none ({_opencv_origin()}; "
        "cv2.getBuildInformation() says 'GStreamer: NO'). The PyPI wheels (opencv-python, "
        "opencv-python-headless) are built without GStreamer. On a Jetson use JetPack's system OpenCV: "
        "create the venv with --system-site-packages and `pip uninstall opencv-python-headless` in it "
        f"(or `sudo apt install python3-opencv`). Check with: {CHECK_BUILD}")


@contextmanager
def _ffmpeg_options(options: str | None) -> Iterator[None]:
    """Set OPENCV_FFMPEG_CAPTURE_OPTIONS while a capture opens, unless the user set it already."""
    if options is None or "OPENCV_FFMPEG_CAPTURE_OPTIONS" in os.environ:
        yield
        return
    os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = options
    try:
        yield
    finally:
        os.environ.pop("OPENCV_FFMPEG_CAPTURE_OPTIONS", None)


def open_advice(spec: SourceSpec) -> str:
    """What to check when ``spec`` does not open or stops giving frames, as a lower-case clause."""
    if spec.kind == "v4l2":
        return ("check that the device exists (ls /dev/video*), that no other program holds it, and that "
                "your user may read it (the 'video' group)")
    if spec.kind == "csi":
        return (f"check the ribbon cable and sensor id, that `gst-launch-1.0 nvarguscamerasrc "
                f"sensor-id={spec.options.get('sensor_id', 0)} num-buffers=1 ! fakesink` works, and that "
                "nvargus-daemon runs (sudo systemctl restart nvargus-daemon)")
    if spec.kind == "gstreamer":
        return "check the pipeline with gst-launch-1.0 (ending in fakesink instead of appsink)"
    if spec.kind == "stream":
        return ("check the address, that the stream is up (ffprobe or VLC on the same URL), the "
                "credentials, and the network or firewall between here and the camera")
    return "check that it is a video that FFmpeg can decode (ffprobe it)"


def open_capture(spec: SourceSpec, open_timeout_s: float = 10.0, read_timeout_s: float = 5.0) -> Any:
    """Open a video source as a ``cv2.VideoCapture``; raise a :class:`PipelineError` saying what to check.

    ``read_timeout_s`` bounds a blocked read on backends that honour it (FFmpeg), so a stalled
    stream returns no frame instead of hanging, and the capture thread can reconnect.
    """
    import cv2

    if spec.kind == "images":
        raise ValueError("images are read with cv2.imread, not a VideoCapture")
    backends = video_backends()
    params: list[int] = []
    if spec.kind == "v4l2":
        api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
    elif spec.kind in ("csi", "gstreamer"):
        require_gstreamer(spec.name)
        api = cv2.CAP_GSTREAMER
    else:
        if not backends["FFMPEG"]:
            raise PipelineError(f"{spec.name} needs OpenCV built with FFmpeg, and this one has none "
                                f"({_opencv_origin()}). Check with: {CHECK_BUILD}")
        api = cv2.CAP_FFMPEG
        if spec.kind == "stream":
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout_s * 1000),
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout_s * 1000)]
    with _ffmpeg_options(spec.ffmpeg_options):
        cap = cv2.VideoCapture(spec.target, api, params) if params else cv2.VideoCapture(spec.target, api)
    if not cap.isOpened():
        cap.release()
        what = {"v4l2": "camera", "csi": "CSI camera", "gstreamer": "GStreamer pipeline",
                "stream": "stream", "file": "video file"}[spec.kind]
        raise PipelineError(f"could not open {what} {spec.name}: {open_advice(spec)}")
    if spec.kind == "v4l2":
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver's queue would hand us stale frames
    return cap
