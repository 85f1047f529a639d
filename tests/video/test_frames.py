"""Any frame to the model's input: grey, BGRA, 16-bit, odd sizes, crop, colour order."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.data.geometry import centre_crop
from pipeline.video.frames import to_bgr, to_model_input


@pytest.mark.parametrize("shape", [(6, 5), (6, 5, 1)])
def test_grey_becomes_three_equal_channels(shape):
    grey = np.arange(30, dtype=np.uint8).reshape(shape)
    bgr = to_bgr(grey)
    assert bgr.shape == (6, 5, 3) and bgr.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(bgr[:, :, c], grey.reshape(6, 5))


def test_bgra_drops_alpha_and_bgr_passes_through():
    bgra = np.zeros((3, 4, 4), np.uint8)
    bgra[..., 0], bgra[..., 1], bgra[..., 2], bgra[..., 3] = 10, 20, 30, 99
    assert to_bgr(bgra).shape == (3, 4, 3)
    np.testing.assert_array_equal(to_bgr(bgra)[0, 0], [10, 20, 30])
    bgr = np.zeros((3, 4, 3), np.uint8)
    assert to_bgr(bgr) is bgr


def test_sixteen_bit_keeps_the_high_byte():
    deep = np.full((2, 2), 0xAB12, np.uint16)
    assert to_bgr(deep)[0, 0].tolist() == [0xAB] * 3


@pytest.mark.parametrize("image,match", [
    (np.zeros((2, 2, 3), np.float32), "8- or 16-bit"),
    (np.zeros((2, 2, 5), np.uint8), r"got shape \(2, 2, 5\)"),
    (np.zeros((2,), np.uint8), r"got shape \(2,\)"),
])
def test_unusable_frames(image, match):
    with pytest.raises(PipelineError, match=match):
        to_bgr(image)


def test_odd_size_resized_to_model_size():
    frame = np.zeros((37, 53, 3), np.uint8)
    frame[:] = (10, 120, 240)
    out = to_model_input(frame, (16, 24))
    assert out.shape == (16, 24, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out[5, 5], [10, 120, 240])  # area interpolation keeps a flat colour


def test_centre_crop_cuts_to_the_aspect():
    wide = np.zeros((10, 30, 3), np.uint8)
    wide[:, 10:20] = 200  # the centre square is bright, the sides dark
    assert centre_crop(wide, 1.0).shape == (10, 10, 3)
    assert to_model_input(wide, (5, 5), crop=True).min() == 200
    assert to_model_input(wide, (5, 5), crop=False).min() < 200  # squashed: the dark sides come in
    tall = np.zeros((30, 10, 3), np.uint8)
    assert centre_crop(tall, 1.0).shape == (10, 10, 3)


def test_rgb_models_get_rgb_and_grey_inputs_work():
    frame = np.zeros((8, 8, 3), np.uint8)
    frame[..., 0] = 255  # blue in BGR
    assert to_model_input(frame, (8, 8), "RGB")[0, 0].tolist() == [0, 0, 255]
    assert to_model_input(frame, (8, 8), "BGR")[0, 0].tolist() == [255, 0, 0]
    assert to_model_input(np.full((9, 7), 50, np.uint8), (4, 4)).shape == (4, 4, 3)
    with pytest.raises(PipelineError, match="BGR or RGB"):
        to_model_input(frame, (8, 8), "YUV")


def test_resize_shorter_then_centre_crop_as_imagenet_evaluates():
    import cv2

    from pipeline.data.geometry import resize_and_crop

    frame = np.zeros((480, 640, 3), np.uint8)  # a VGA camera frame
    frame[:, 80:560] = 255  # a bright 480x480 square in the middle
    frame[190:290, 270:370] = (0, 0, 200)  # a red centre
    out = to_model_input(frame, (224, 224), resize_shorter=256)
    # the reference transform: shorter side to 256 (480x640 -> 256x341), then the centre 224x224
    expected = cv2.resize(frame, (341, 256), interpolation=cv2.INTER_AREA)[16:240, 58:282]
    assert out.shape == (224, 224, 3) and np.abs(out.astype(int) - expected).mean() < 2.0
    assert out[0, 0].tolist() == [255, 255, 255]  # the dark sides are cut away, not squashed in
    assert resize_and_crop(frame[:256, :256], (224, 224), 256).shape == (224, 224, 3)
    same = np.full((224, 224, 3), 7, np.uint8)
    assert to_model_input(same, (224, 224), resize_shorter=256) is not None
    assert np.array_equal(to_model_input(same, (224, 224), resize_shorter=256), same)  # at size: untouched
