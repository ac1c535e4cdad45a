"""Run directories and checkpoints.

A run directory holds everything about one training run::

    RUN_DIR/run.json             config, model variant, dataset, versions
    RUN_DIR/checkpoints/last.pt  the latest state (model, optimizer, RNG, step, epoch, best metric)
    RUN_DIR/checkpoints/best.pt  the model of the best validation epoch
    RUN_DIR/metrics.jsonl        one JSON object per logged step and per validation
    RUN_DIR/curves.png           training curves
    RUN_DIR/eval/<split>.json    results of ``hanet evaluate``

Checkpoints are written atomically (temporary file, fsync, rename), so an interrupted write
never leaves a truncated checkpoint.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from hanet import __version__
from hanet.config import HANetConfig
from hanet.errors import HanetError
from hanet.io import append_line, atomic_write_json, atomic_write_text, ensure_dir, safe_torch_load

CHECKPOINT_FORMAT = "hanet-checkpoint"
CHECKPOINT_VERSION = 1


@dataclass
class RunInfo:
    """What ``run.json`` records."""

    config: HANetConfig
    variant: str
    dataset: Optional[str]
    created: float
    hanet_version: str = __version__
    #: the training vocabulary's :func:`~hanet.data.formats.vocab_fingerprint` (None: not recorded)
    vocab: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "variant": self.variant, "dataset": self.dataset,
                "created": self.created, "hanet_version": self.hanet_version, "vocab": self.vocab}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunInfo":
        return cls(HANetConfig.from_dict(d["config"]), d.get("variant", "hanet"), d.get("dataset"),
                   d.get("created", 0.0), d.get("hanet_version", "?"), d.get("vocab"))


class RunDir:
    """A run directory (see module docstring)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    @property
    def info_path(self) -> Path:
        return self.path / "run.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.pt"

    @property
    def metrics_log(self) -> Path:
        return self.path / "metrics.jsonl"

    def exists(self) -> bool:
        return self.info_path.is_file()

    def read_info(self) -> RunInfo:
        if not self.info_path.is_file():
            raise HanetError(f"{self.path}: not a run directory (no run.json); train one with `hanet train`")
        try:
            return RunInfo.from_dict(json.loads(self.info_path.read_text()))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise HanetError(f"{self.info_path}: unreadable run description ({exc})") from None

    def write_info(self, info: RunInfo) -> None:
        ensure_dir(self.path, "run folder")
        atomic_write_json(self.info_path, info.to_dict())

    def log(self, record: dict[str, Any]) -> None:
        append_line(self.metrics_log, json.dumps({"time": round(time.time(), 3), **record}))

    def truncate_log(self, step: int, epoch: int) -> int:
        """Drop the records a resumed run will write again: training steps after ``step`` and
        validations of epochs from ``epoch`` on (a run killed after its last checkpoint logged
        them once already). Returns how many were dropped."""
        if not self.metrics_log.is_file():
            return 0
        lines = self.metrics_log.read_text(encoding="utf-8").splitlines()
        keep = []
        for line in lines:
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by the crash
            later = (r.get("kind") == "train" and int(r.get("step", 0)) > step) or \
                    (r.get("kind") == "val" and int(r.get("epoch", 0)) >= epoch)
            if not later:
                keep.append(line)
        if len(keep) != len(lines):
            atomic_write_text(self.metrics_log, "".join(line + "\n" for line in keep))
        return len(lines) - len(keep)

    def read_log(self) -> list[dict[str, Any]]:
        if not self.metrics_log.is_file():
            return []
        out = []
        for line in self.metrics_log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a crash
        return out

    def default_checkpoint(self) -> Path:
        for p in (self.best, self.last):
            if p.is_file():
                return p
        raise HanetError(f"{self.path}: no checkpoint in {self.checkpoints}")


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and sanity-check a checkpoint file."""
    p = Path(path)
    if not p.is_file():
        raise HanetError(f"{p}: checkpoint not found")
    ckpt = safe_torch_load(p, "checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise HanetError(f"{p}: not a hanet checkpoint (for the official *.th files use "
                         f"hanet.model.official.load_official_checkpoint)")
    if ckpt.get("version", 0) > CHECKPOINT_VERSION:
        raise HanetError(f"{p}: checkpoint format v{ckpt.get('version')} is newer than this hanet understands")
    return ckpt


def model_from_checkpoint(path: str | os.PathLike, config: Optional[HANetConfig] = None,
                          variant: Optional[str] = None, device: str | torch.device = "cpu"):
    """Build the model a checkpoint was trained as and load its weights.

    Args:
        path: checkpoint file.
        config: expected config; a checkpoint whose model config differs is an error.
        variant: expected variant (``hanet``/``global``).
        device: where to put the model.

    Returns:
        (model in eval mode, its HANetConfig, the checkpoint dict).
    """
    from hanet.model import HANet

    ckpt = load_checkpoint(path)
    ck_cfg = HANetConfig.from_dict(ckpt["config"])
    ck_var = ckpt.get("variant", "hanet")
    if config is not None and config.model != ck_cfg.model:
        diffs = _diff(config.to_dict()["model"], ck_cfg.to_dict()["model"])
        raise HanetError(f"{path}: checkpoint was trained with another model config ({'; '.join(diffs[:6])})")
    if variant is not None and variant != ck_var:
        raise HanetError(f"{path}: checkpoint is a {ck_var!r} model, expected {variant!r}")
    model = HANet(ck_cfg.model, variant=ck_var)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise HanetError(f"{path}: weights do not fit the model ({str(exc).splitlines()[0]})") from None
    return model.to(device).eval(), ck_cfg, ckpt


def model_from_official(checkpoint: str | os.PathLike, config: str | os.PathLike | HANetConfig,
                        device: str | torch.device = "cpu"):
    """Build HANet from an authors' checkpoint (``epoch.N.th``) and their ``model.json``.

    Args:
        checkpoint: ``{"video_encoder": state, "text_encoder": state}`` as the authors' code saves.
        config: their ``model.json`` (or one of ours, or a config object).
        device: where to put the model.

    Returns:
        (model in eval mode, its HANetConfig, ``{"epoch": N or None, "source": path, "format": "official"}``).

    Raises:
        HanetError: a missing or unreadable file, or weights of another shape than the config's.
    """
    import re

    from hanet.config import load_config_file
    from hanet.model import HANet
    from hanet.model.official import load_official_checkpoint

    cfg = config if isinstance(config, HANetConfig) else load_config_file(config)
    model = HANet(cfg.model, variant="hanet")
    try:
        load_official_checkpoint(str(checkpoint), model)
    except HanetError as exc:
        raise HanetError(f"{exc} (config {config})") from None
    m = re.search(r"(?:epoch|step)\.(\d+)\.th$", str(checkpoint))
    return model.to(device).eval(), cfg, {"epoch": int(m.group(1)) if m else None, "source": str(checkpoint),
                                          "format": "official"}


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix.rstrip('.')}: {a!r} vs {b!r}"]


__all__ = ["RunDir", "RunInfo", "load_checkpoint", "model_from_checkpoint", "model_from_official", "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION"]
