"""``hanet extract`` against what users and their machines throw at it: a killed parent, output paths
that cannot be written, an empty folder, a full disk, a read-only disk."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import h5py
import pytest

from hanet.cli import main as hanet_main

from .test_extract import _cli, _wait_for_journal, many  # noqa: F401 - the fixture


def _children(pid: int) -> set[int]:
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.add(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
def test_decoder_workers_die_with_a_killed_parent(tmp_path, many):  # noqa: F811
    out = tmp_path / "feats.h5"
    proc = subprocess.Popen(_cli(str(many), "-o", str(out), "--fps", "10", "--image-size", "64", "--workers", "2",
                                 "--no-progress"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_journal(out, proc)
    workers = _children(proc.pid)
    assert len(workers) >= 2, workers  # the decoding pool (and multiprocessing's helper)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    assert not [p for p in workers if _alive(p)], "decoder workers outlived their parent"


def test_output_paths_that_cannot_be_written(tmp_path, clip_dir, capsys):
    clip = str(clip_dir / "h264.mp4")
    (tmp_path / "afile").write_text("x")
    assert hanet_main(["extract", clip, "-o", str(tmp_path / "afile" / "x.h5"), "--no-progress"]) == 2
    assert "afile: is a file, not a folder" in capsys.readouterr().err
    assert hanet_main(["extract", clip, "-o", str(tmp_path), "--no-progress"]) == 2
    assert f"{tmp_path}: is a folder; give the path of the HDF5 file" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert hanet_main(["extract", str(tmp_path / "empty"), "-o", str(tmp_path / "e.h5"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "empty: no video files found" in err and "Traceback" not in err


def _mount_tmpfs(where: Path, *options: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(where)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")


def _umount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_a_full_disk_is_an_error_and_loses_nothing(tmp_path, many):  # noqa: F811
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "size=1m")
    try:
        out = disk / "feats.h5"
        args = _cli(str(many), "-o", str(out), "--fps", "10", "--image-size", "64", "--workers", "0",
                    "--no-progress")
        res = subprocess.run(args, capture_output=True, text=True, timeout=300)
        assert res.returncode == 2, res.stderr
        assert "no space left on device" in res.stderr and "Traceback" not in res.stderr
        assert "run the same command again to resume" in res.stderr
        with h5py.File(out, "r") as f:  # the file is whole
            committed = set(f.keys())
        journal = Path(str(out) + ".journal")
        done = len(committed) + len(list(journal.glob("*.h5")) if journal.exists() else [])
        assert 0 < done < 12
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        again = subprocess.run(args, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr
        assert f"{12 - done} videos extracted" in again.stdout and f"{done} already done" in again.stdout
    finally:
        _umount(disk)


def test_a_read_only_output_folder(tmp_path, clip_dir, capsys):
    ro = tmp_path / "ro"
    _mount_tmpfs(ro, "size=1m", "ro")
    try:
        assert hanet_main(["extract", str(clip_dir / "h264.mp4"), "-o", str(ro / "x.h5"), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert str(ro) in err and ("read-only" in err or "not writable" in err) and "Traceback" not in err
    finally:
        _umount(ro)
