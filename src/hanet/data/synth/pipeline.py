"""Making a whole world on disk: :func:`generate`.

Layout of a world directory::

    DIR/videos/video0.mp4 ...        H.264, yuv420p, cfg.width x cfg.height, cfg.fps
    DIR/ref_captions.json            {video_name: [caption, ...]}  (cfg.captions_per_video each)
    DIR/trn_names.npy, val_names.npy, tst_names.npy, tst_novel_names.npy
                                     numpy arrays of str (np.save), the released split format
    DIR/annotations.json             {"format", "version", "seed", "config", "held_out",
                                      "splits": {split: [names]}, "videos": {name: annotation}}
    DIR/manifest.json                written last: version, config fingerprint, file sizes

A directory is trusted only when ``manifest.json`` exists, has this code's
:data:`~hanet.data.synth.config.WORLD_VERSION`, the fingerprint of the requested config and
seed and the digest of the generator's source (:func:`code_digest`), and every listed file exists
with its recorded size. Anything else (a run that was killed,
an older version, another config) is regenerated from scratch: the old manifest is removed first,
so a second interruption cannot leave a directory that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hanet.data.synth.config import SPLITS, WORLD_VERSION, SynthConfig
from hanet.errors import DataError
from hanet.io import atomic_save_npy, atomic_write_bytes, ensure_dir

MANIFEST_FILE = "manifest.json"
CAPTIONS_FILE = "ref_captions.json"
VIDEO_DIR = "videos"
FORMAT = "hanet-synth"
_OWN_VIDEO = re.compile(r"video\d+\.mp4(\.tmp)?")


@dataclass
class SynthReport:
    """What :func:`generate` did.

    Attributes:
        out_dir: the world's directory.
        seed: its seed.
        config: its config.
        skipped: True when the directory already held this world and nothing was written.
        split_sizes: clips per split.
        held_out: the attribute-action pairs only ``tst_novel`` shows.
        num_frames: frames per clip.
        seconds: wall time of the call.
        plan_seconds: time spent sampling scenes and captions.
        render_seconds: time spent drawing and encoding clips.
        workers: processes that drew clips.
        bytes: total size of the world's files.
    """

    out_dir: Path
    seed: int
    config: SynthConfig
    skipped: bool
    split_sizes: dict[str, int]
    held_out: list[list[str]] = field(default_factory=list)
    num_frames: int = 0
    seconds: float = 0.0
    plan_seconds: float = 0.0
    render_seconds: float = 0.0
    workers: int = 1
    bytes: int = 0

    @property
    def num_videos(self) -> int:
        """Clips in the world."""
        return sum(self.split_sizes.values())

    def summary(self) -> str:
        """One line for people."""
        splits = " ".join(f"{k}={v}" for k, v in self.split_sizes.items())
        if self.skipped:
            return f"synth: {self.out_dir} already holds this world ({self.num_videos} clips: {splits})"
        return (f"synth: {self.num_videos} clips ({splits}) of {self.num_frames} frames "
                f"{self.config.width}x{self.config.height} @ {self.config.fps:g} fps in "
                f"{self.seconds:.1f}s (plan {self.plan_seconds:.1f}s, draw+encode "
                f"{self.render_seconds:.1f}s on {self.workers} process(es)), "
                f"{self.bytes / 1e6:.1f} MB -> {self.out_dir}")


# ---------------------------------------------------------------------------------------------
# Manifest
# ---------------------------------------------------------------------------------------------
# The modules whose code decides the bytes of a world (not the CLI, not the analysis).
_CODE_MODULES = ("config", "vocab", "scenes", "motion", "world", "render", "captions", "writer", "pipeline")


def code_digest() -> str:
    """Hash of the generator's source: a world made by other code is not trusted.

    WORLD_VERSION is bumped by hand when output changes; this catches the times it was not.
    """
    digest = hashlib.sha256()
    here = Path(__file__).parent
    for name in _CODE_MODULES:
        digest.update((here / f"{name}.py").read_bytes())
    return digest.hexdigest()


def world_status(out_dir: str | Path, config: SynthConfig, seed: int) -> tuple[bool, str]:
    """Whether a directory holds exactly this world, complete.

    Args:
        out_dir: the directory.
        config: the requested config.
        seed: the requested seed.

    Returns:
        ``(True, "complete")`` or ``(False, reason)``.
    """
    path = Path(out_dir) / MANIFEST_FILE
    if not path.is_file():
        return False, "no manifest (new or unfinished)"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return False, "unreadable manifest"
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return False, "not a synth manifest"
    if manifest.get("version") != WORLD_VERSION:
        return False, f"world version {manifest.get('version')!r}, this code makes {WORLD_VERSION}"
    if manifest.get("fingerprint") != config.fingerprint(seed):
        return False, "made with another config or seed"
    if manifest.get("code") != code_digest():
        return False, "made by another version of the generator code"
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return False, "manifest lists no files"
    for rel, size in files.items():
        f = Path(out_dir) / rel
        if not f.is_file() or f.stat().st_size != size:
            return False, f"{rel} missing or changed"
    return True, "complete"


def _write_atomic(path: Path, data: bytes) -> None:
    atomic_write_bytes(path, data)


def _save_names(path: Path, names: Sequence[str]) -> None:
    # A fixed-width unicode array, as in the released MSR-VTT/VATEX files.
    atomic_save_npy(path, np.array(list(names), dtype=str if names else "<U1"))


def _clear_own_files(out_dir: Path) -> None:
    """Remove what an earlier run of this generator may have left; nothing else."""
    (out_dir / MANIFEST_FILE).unlink(missing_ok=True)
    videos = out_dir / VIDEO_DIR
    if videos.is_dir():
        for f in videos.iterdir():
            if _OWN_VIDEO.fullmatch(f.name):
                f.unlink()
    for name in [CAPTIONS_FILE, "annotations.json"] + [f"{s}_names.npy" for s in SPLITS]:
        (out_dir / name).unlink(missing_ok=True)
        # Temporary files of a write that was interrupted (see _write_atomic, _save_names).
        (out_dir / f"{name}.tmp").unlink(missing_ok=True)
        (out_dir / f"{name}.tmp.npy").unlink(missing_ok=True)
    (out_dir / f"{MANIFEST_FILE}.tmp").unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Drawing (runs in worker processes)
# ---------------------------------------------------------------------------------------------
def _render_batch(items: list[tuple[dict[str, Any], str, int]], seed: int, noise_std: float,
                  antialias: bool, crf: int) -> list[tuple[str, int]]:
    """Draw and encode clips; returns (path, size) per clip."""
    from hanet.data.synth.render import noise_bank, render_clip
    from hanet.data.synth.world import video_seed
    from hanet.data.synth.writer import write_mp4

    out = []
    for ann, path, index in items:
        rng = np.random.default_rng(video_seed(seed, index, 3))
        bank = noise_bank(seed, ann["height"], ann["width"]) if noise_std > 0 else None
        frames = render_clip(ann, noise_std, antialias, rng, bank)
        out.append((path, write_mp4(path, frames, ann["fps"], crf)))
    return out


def _default_workers(num_videos: int) -> int:
    cpus = os.cpu_count() or 1
    # Start-up of a process (numpy + PyAV imports) costs about as much as drawing 50 clips.
    return 1 if num_videos < 100 else max(1, min(cpus, 8))


# ---------------------------------------------------------------------------------------------
# The entry point
# ---------------------------------------------------------------------------------------------
def generate(out_dir: str | Path, config: SynthConfig | None = None, seed: int = 0,
             progress: bool = True, workers: int | None = None, force: bool = False
             ) -> SynthReport:
    """Make (or reuse) a synthetic world in a directory.

    Idempotent: when ``out_dir`` already holds a complete world of the same config, seed and
    world version, nothing is written. A half-finished or different world is regenerated.

    Args:
        out_dir: the directory (created if needed). Files of other tools in it are left alone.
        config: the world's config (default: the ``default`` preset).
        seed: the world's seed; the same config and seed give the same files.
        progress: show a progress bar on stderr.
        workers: processes that draw clips (None: one per core, one for small worlds).
            Output does not depend on it.
        force: regenerate even when the directory holds this world.

    Returns:
        A :class:`SynthReport`.

    Raises:
        HanetError: an invalid config.
        DataError: ``out_dir`` is not a directory.
    """
    from hanet.data.synth.captions import make_captions
    from hanet.data.synth.world import plan_world, video_seed

    start = time.perf_counter()
    config = config or SynthConfig()
    config.validate()
    seed = int(seed)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a directory")
    sizes = config.split_sizes()
    if not force:
        ok, _ = world_status(out, config, seed)
        if ok:
            manifest = json.loads((out / MANIFEST_FILE).read_text())
            return SynthReport(out, seed, config, True, sizes, manifest.get("held_out", []),
                               config.num_frames, time.perf_counter() - start,
                               bytes=sum(manifest["files"].values()))
    ensure_dir(out, "world folder")
    _clear_own_files(out)
    ensure_dir(out / VIDEO_DIR, "video folder")

    plan = plan_world(config, seed)
    captions = {v.name: make_captions(v.annotation, config,
                                      np.random.default_rng(video_seed(seed, i, 2)))
                for i, v in enumerate(plan.videos)}
    plan_seconds = time.perf_counter() - start

    t0 = time.perf_counter()
    items = [(v.annotation, str(out / VIDEO_DIR / f"{v.name}.mp4"), i)
             for i, v in enumerate(plan.videos)]
    n_workers = min(max(1, int(workers)) if workers else _default_workers(len(items)), len(items))
    _render_all(items, n_workers, (seed, float(config.noise_std), bool(config.antialias), int(config.crf)), progress)
    render_seconds = time.perf_counter() - t0
    manifest = _write_world(out, plan, captions, config, seed)
    return SynthReport(out, seed, config, False, sizes, manifest["held_out"], config.num_frames,
                       time.perf_counter() - start, plan_seconds, render_seconds, n_workers,
                       sum(manifest["files"].values()))


def _render_all(items: list[tuple[dict, str, int]], n_workers: int, args: tuple, progress: bool) -> None:
    """Draw and encode every clip (``(annotation, mp4 path, index)``), in ``n_workers`` processes."""
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc="synth: drawing clips", unit="clip", file=sys.stderr,
                   dynamic_ncols=True)
    try:
        if n_workers == 1:
            for k in range(0, len(items), 8):
                _render_batch(items[k:k + 8], *args)
                if bar:
                    bar.update(len(items[k:k + 8]))
        else:
            chunk = max(4, min(32, len(items) // (n_workers * 8) or 1))
            # spawn, not fork: the caller may hold threads (a torch pool) that fork would copy.
            with ProcessPoolExecutor(n_workers, mp_context=get_context("spawn")) as pool:
                futures = [pool.submit(_render_batch, items[k:k + chunk], *args)
                           for k in range(0, len(items), chunk)]
                for fut in as_completed(futures):
                    done = fut.result()
                    if bar:
                        bar.update(len(done))
    finally:
        if bar:
            bar.close()


def _write_world(out: Path, plan: Any, captions: dict[str, list[str]], config: SynthConfig, seed: int) -> dict:
    """Captions, annotations, split names and, last (the commit), the manifest; returns it."""
    from hanet import __version__
    from hanet.data.synth.world import ANNOTATIONS_FILE

    by_split = {s: plan.names(s) for s in SPLITS}
    _write_atomic(out / CAPTIONS_FILE, json.dumps(captions, indent=1).encode())
    world = {
        "format": "hanet-synth-annotations", "version": WORLD_VERSION, "seed": seed,
        "config": config.to_dict(), "held_out": [list(p) for p in plan.held_out],
        "splits": by_split, "videos": {v.name: v.annotation for v in plan.videos},
    }
    _write_atomic(out / ANNOTATIONS_FILE, json.dumps(world, separators=(",", ":")).encode())
    for split, names in by_split.items():
        _save_names(out / f"{split}_names.npy", names)
    files = {f"{VIDEO_DIR}/{v.name}.mp4": (out / VIDEO_DIR / f"{v.name}.mp4").stat().st_size
             for v in plan.videos}
    for name in [CAPTIONS_FILE, ANNOTATIONS_FILE] + [f"{s}_names.npy" for s in SPLITS]:
        files[name] = (out / name).stat().st_size
    manifest = {
        "format": FORMAT, "version": WORLD_VERSION, "fingerprint": config.fingerprint(seed),
        "code": code_digest(), "seed": seed, "config": config.to_dict(), "split_sizes": config.split_sizes(),
        "held_out": [list(p) for p in plan.held_out], "num_frames": config.num_frames,
        "hanet_version": __version__, "files": files,
    }
    _write_atomic(out / MANIFEST_FILE, json.dumps(manifest, indent=1).encode())
    return manifest
