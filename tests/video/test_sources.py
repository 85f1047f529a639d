"""Source strings: what each opens, the exact CSI pipeline, redaction, and clear errors."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.video.sources import (RTSP_FFMPEG_OPTIONS, csi_pipeline, open_capture, parse_source, redact,
                                    require_gstreamer, video_backends)

CSI_0 = ("nvarguscamerasrc sensor-id=0 ! "
         "video/x-raw(memory:NVMM), width=(int)1280, height=(int)720, framerate=(fraction)30/1, format=(string)NV12 ! "
         "nvvidconv flip-method=0 ! "
         "video/x-raw, width=(int)1280, height=(int)720, format=(string)BGRx ! "
         "videoconvert ! video/x-raw, format=(string)BGR ! "
         "appsink drop=true max-buffers=1 sync=false")


def test_v4l2_index_and_device_path():
    spec = parse_source("0")
    assert (spec.kind, spec.target, spec.name, spec.live) == ("v4l2", 0, "/dev/video0", True)
    spec = parse_source("/dev/video2")
    assert (spec.kind, spec.target) == ("v4l2", "/dev/video2")
    with pytest.raises(PipelineError, match="is not a camera, stream, existing file"):
        parse_source("\u00b2")  # a digit to str.isdigit, no camera index


def test_csi_pipeline_text_exactly():
    spec = parse_source("csi://0")
    assert spec.kind == "csi" and spec.live and spec.name == "csi://0"
    assert spec.target == CSI_0 == csi_pipeline(0)


def test_csi_options():
    spec = parse_source("csi://1?width=1920&height=1080&fps=60&flip=2")
    assert spec.target.startswith("nvarguscamerasrc sensor-id=1 ! ")
    assert "width=(int)1920, height=(int)1080, framerate=(fraction)60/1" in spec.target
    assert "nvvidconv flip-method=2 !" in spec.target
    assert spec.target.endswith("appsink drop=true max-buffers=1 sync=false")


@pytest.mark.parametrize("text,match", [
    ("csi://x", "sensor id"),
    ("csi://0?zoom=2", "unknown option 'zoom'"),
    ("csi://0?fps=0", "positive integer"),
    ("csi://0?width=wide", "positive integer"),
    ("csi://0?width=\u00b2", "positive integer"),  # a digit to str.isdigit, not to int()
    ("csi://\u00b2", "sensor id"),
    ("csi://0?flip=9", "flip=9 should be 0 to 7"),
])
def test_csi_bad_options(text, match):
    with pytest.raises(PipelineError, match=match):
        parse_source(text)


def test_rtsp_uses_tcp_low_latency_and_is_redacted():
    spec = parse_source("rtsp://admin:s3cret@10.0.0.2:554/stream1")
    assert spec.kind == "stream" and spec.live
    assert spec.target == "rtsp://admin:s3cret@10.0.0.2:554/stream1"  # what FFmpeg needs
    assert spec.name == "rtsp://***@10.0.0.2:554/stream1"  # what anyone sees
    assert spec.ffmpeg_options == RTSP_FFMPEG_OPTIONS and "rtsp_transport;tcp" in RTSP_FFMPEG_OPTIONS
    http = parse_source("https://cam.local/video.mjpg")
    assert http.kind == "stream" and http.ffmpeg_options is None


@pytest.mark.parametrize("text,expected", [
    ("rtsp://user:pass@host/x", "rtsp://***@host/x"),
    ("rtsp://user@host:554", "rtsp://***@host:554"),
    ("rtsp://admin:p@ss@10.1.1.1/live", "rtsp://***@10.1.1.1/live"),  # an unescaped @ in the password
    ("http://cam/video?user=bob&password=hunter2&res=hd", "http://cam/video?user=***&password=***&res=hd"),
    ("https://cam/feed?token=abc123", "https://cam/feed?token=***"),
    ("could not open rtsp://u:p@h/s: refused", "could not open rtsp://***@h/s: refused"),
    ("rtsp://host/stream", "rtsp://host/stream"),
    ("clip.mp4", "clip.mp4"),
])
def test_redact(text, expected):
    assert redact(text) == expected


def _write_png(path, value):
    cv2.imwrite(str(path), np.full((4, 4, 3), value, np.uint8))


def test_files_folders_and_globs(tmp_path):
    video = tmp_path / "clip.avi"
    video.write_bytes(b"not really a video")
    assert parse_source(str(video)).kind == "file" and not parse_source(str(video)).live
    for name in ("f10.png", "f2.png", "f1.png", "notes.txt"):
        (_write_png(tmp_path / name, 1) if name.endswith(".png") else (tmp_path / name).write_text("x"))
    spec = parse_source(str(tmp_path))
    assert spec.kind == "images" and not spec.live
    assert [os.path.basename(p) for p in spec.paths] == ["f1.png", "f2.png", "f10.png"]  # natural order
    spec = parse_source(str(tmp_path / "f1*.png"))
    assert [os.path.basename(p) for p in spec.paths] == ["f1.png", "f10.png"]
    single = parse_source(str(tmp_path / "f2.png"))
    assert single.kind == "images" and len(single.paths) == 1


@pytest.mark.parametrize("text,match", [
    ("", "empty"),
    ("no/such/clip.mp4", "not a camera, stream, existing file"),
    ("ftp://user:pw@host/x", r"unknown scheme 'ftp'"),
])
def test_bad_sources(text, match):
    with pytest.raises(PipelineError, match=match) as info:
        parse_source(text)
    assert "pw" not in str(info.value)


def test_empty_folder_and_unmatched_glob(tmp_path):
    (tmp_path / "sub").mkdir()
    with pytest.raises(PipelineError, match=r"holds no images.*\*\*/\*\.png"):
        parse_source(str(tmp_path))
    with pytest.raises(PipelineError, match="matches no images"):
        parse_source(str(tmp_path / "*.jpg"))


def test_backends_from_build_information():
    info = "  Video I/O:\n    FFMPEG:                      YES\n    GStreamer:                   YES (1.20.3)\n"
    assert video_backends(info) == {"GStreamer": True, "FFMPEG": True, "v4l/v4l2": False}
    require_gstreamer("csi://0", info)  # no error
    with pytest.raises(PipelineError, match=r"GStreamer.*PyPI wheels.*system OpenCV.*getBuildInformation"):
        require_gstreamer("csi://0", info.replace("YES (1.20.3)", "NO"))


@pytest.mark.skipif(video_backends()["GStreamer"], reason="this OpenCV has GStreamer; the error path needs one without")
def test_csi_without_gstreamer_says_so():
    with pytest.raises(PipelineError, match=r"csi://0 needs OpenCV built with GStreamer"):
        open_capture(parse_source("csi://0"))


def test_unopenable_camera_and_file(tmp_path):
    with pytest.raises(PipelineError, match=r"could not open camera /dev/video63: check that the device exists"):
        open_capture(parse_source("/dev/video63"))
    bad = tmp_path / "broken.avi"
    bad.write_bytes(b"\0" * 64)
    with pytest.raises(PipelineError, match=r"could not open video file .*broken.avi.*ffprobe"):
        open_capture(parse_source(str(bad)))


def test_unreachable_stream_is_named_without_credentials(monkeypatch, capfd):
    monkeypatch.delenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", raising=False)
    with pytest.raises(PipelineError, match=r"could not open stream rtsp://\*\*\*@127\.0\.0\.1:1/live") as info:
        open_capture(parse_source("rtsp://viewer:hunter2@127.0.0.1:1/live"), open_timeout_s=1)
    assert "hunter2" not in str(info.value)
    out, err = capfd.readouterr()  # OpenCV's and FFmpeg's own messages, too
    assert "hunter2" not in out + err
    assert "OPENCV_FFMPEG_CAPTURE_OPTIONS" not in os.environ  # set only while opening
