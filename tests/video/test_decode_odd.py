"""Files FFmpeg plays that a reader trusting headers gets wrong: each is read as FFmpeg reads it.

The expected frame counts and times are FFmpeg's own (``ffmpeg -i FILE -f null -``), noted on each
maker in ``oddfiles.py``; the OpenCV samples are real files from Debian's opencv-doc (fetched by
``scripts/setup.sh --test``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hanet.errors import DataError
from hanet.video.decode import decode_video, probe

from . import oddfiles
from .conftest import frame_level
from .test_decode import frame_index

OPENCV = Path(__file__).resolve().parents[2] / ".hanet-cache" / "opencv-samples"


def test_avi_drop_frames_are_held_not_truncation(tmp_path):
    path = oddfiles.avi_with_drop_frames(tmp_path / "drop.avi")
    v = decode_video(path)
    assert v.info.num_frames == 10 and v.info.duration == pytest.approx(2.8)
    np.testing.assert_allclose(v.timestamps, np.arange(10) * 0.3, atol=1e-6)
    assert [frame_index(f) for f in v.frames] == list(range(10))
    # 20 uniform samples over 2.8 s: the picture on screen at each centre, every one held 3 periods
    s = decode_video(path, num_frames=20)
    centres = (np.arange(20) + 0.5) * 2.8 / 20
    assert [frame_index(f) for f in s.frames] == sorted(set(np.floor(centres / 0.3 + 1e-9).astype(int)))
    # a header counting 41 frames after the last of its 10 pictures is complete too (its index lists
    # every picture); like FFmpeg (time=2.80) the clip lasts to the end of its last picture
    held = probe(oddfiles.avi_with_drop_frames(tmp_path / "hold.avi", trailing_hold=True))
    assert held.num_frames == 10 and held.duration == pytest.approx(2.8)


def test_edit_list_of_a_copy_trimmed_mp4(tmp_path):
    path = oddfiles.trimmed_mp4(tmp_path / "trim.mp4", tmp_path / "src.mp4")
    info = probe(path)
    assert info.num_frames == 122 and info.duration == pytest.approx(122 / 30, abs=1e-3)
    v = decode_video(path, num_frames=20)
    assert len(v.frames) == 20 and v.timestamps[0] >= 0 and v.timestamps[-1] < info.duration
    np.testing.assert_allclose(v.timestamps, np.floor((np.arange(20) + 0.5) * info.duration / 20 * 30 + 1e-6) / 30,
                               atol=1e-6)
    first = decode_video(path, num_frames=1000).frames[0]  # frame 0 of the clip is 2.5 s into the source
    assert frame_index(first) == 75 % 28


def test_concatenated_transport_streams_keep_both_halves(tmp_path):
    path = oddfiles.concatenated_ts(tmp_path / "cat.ts")
    v = decode_video(path)
    assert v.info.num_frames == 180 and v.info.duration == pytest.approx(6.0, abs=1e-3)
    assert v.info.discontinuities == 1 and np.all(np.diff(v.timestamps) > 0)
    np.testing.assert_allclose(np.diff(v.timestamps), 1 / 30, atol=1e-3)
    grey = v.frames[:, 30:, 40:].reshape(180, -1).mean(1)
    # the first clip's brightness ramp, then the second's (level 100 + 8 * (i % 10)): both are there
    np.testing.assert_allclose(grey[:90], [frame_level(i) for i in range(90)], atol=3)
    np.testing.assert_allclose(grey[90:], 100 + 8 * (np.arange(90) % 10), atol=3)
    s = decode_video(path, num_frames=4)
    assert s.timestamps[-1] > 3.0  # samples span the whole 6 s, not the first half


def test_gif_pixel_aspect_byte_is_ignored(tmp_path):
    # shown as browsers show it: an 80x40 picture, resized to 64x32 and centre-cropped to 32x32, so
    # the red bar over the left eighth falls outside the crop (with the byte applied it would not)
    v = decode_video(oddfiles.gif_with_pixel_aspect(tmp_path / "aspect.gif"), size=32)
    red = np.abs(v.frames.astype(int) - [255, 0, 0]).max(-1) < 60
    assert v.frames.shape == (5, 32, 32, 3) and not red.any()


def test_cover_art_and_a_codec_without_decoder_say_what_is_wrong(tmp_path):
    cover = oddfiles.audio_with_cover(tmp_path / "song.mp3")
    with pytest.raises(DataError, match=r"no video stream, only a still picture \(cover art") as err:
        decode_video(cover)
    assert str(cover) in str(err.value)
    nodec = oddfiles.mp4_without_decoder(tmp_path / "jxs.mp4")
    with pytest.raises(DataError, match="no decoder for its video codec in this FFmpeg build") as err:
        decode_video(nodec, num_frames=4)
    assert str(nodec) in str(err.value)


def test_the_default_flagged_track_is_read(tmp_path):
    v = decode_video(oddfiles.two_video_tracks(tmp_path / "two.mkv"))
    assert v.info.stream_index == 1 and (v.info.width, v.info.height) == (32, 24)
    assert v.frames[:, 16:, 20:].mean() > 95  # the second track's brighter frames


def test_elementary_streams_and_3g2(tmp_path):
    from hanet.video.extract import list_videos

    files = oddfiles.elementary_streams(tmp_path)
    assert sorted(Path(e.path).name for e in list_videos([tmp_path])) == sorted(p.name for p in files)
    for p in files:
        v = decode_video(p)
        assert v.info.num_frames == 25 and v.info.duration == pytest.approx(1.0, abs=0.05), p


def _opencv(name: str) -> Path:
    p = OPENCV / name
    if not p.is_file():
        pytest.skip(f"{p} not there (scripts/setup.sh --test fetches Debian's opencv-doc samples)")
    return p


@pytest.mark.parametrize("name,frames,seconds", [
    ("tree.avi", 68, 29.6),            # 444 index entries, 376 of them zero-size drop frames
    ("Megamind.avi", 270, 11.30),      # packed B-frames: out-of-order pts, dts are right
    ("Megamind_bugy.avi", 270, 9.03),
    ("vtest.avi", 795, 79.5),
])
def test_opencv_sample_videos_as_ffmpeg_plays_them(name, frames, seconds):
    info = probe(_opencv(name))
    assert info.num_frames == frames and info.duration == pytest.approx(seconds, abs=0.02)
    v = decode_video(_opencv(name), num_frames=20, size=64)
    assert len(v.frames) == 20 and np.all(np.diff(v.timestamps) > 0) and v.timestamps[-1] < info.duration
