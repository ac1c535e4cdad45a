"""The multilevel video encoder: event, action and entity levels with concept-guided clips.

Frame features pass through three level-specific projections. The event level attends over
frames to a single video embedding. The action and entity levels each predict concepts per
frame (verb: temporal conv k=5, noun: k=1, each with BatchNorm and a sigmoid), pool them into
video-level concept probabilities with top-k MIL, and use the highest-scoring concepts to pick
the frames that form local clip embeddings.

Everything is batched: variable-length top-k, clip windows and their fallbacks are tensor ops,
so there is no per-video Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Optional, Sequence
import torch
import torch.nn.functional as F
from torch import nn

from hanet.config import ModelConfig
from hanet.errors import ShapeError


@dataclass
class VideoEncoderOutput:
    """Outputs of :class:`VideoEncoder` for B videos padded to T frames (d = dim_embed).

    Attributes:
        global_embeds: (B, d) event-level (whole video) embedding.
        verb_clips: (B, Sv, d) action-level local clip embeddings, one per selected verb
            concept (Sv = num_selected_verbs).
        noun_clips: (B, Sn, d) entity-level local clip embeddings (Sn = num_selected_nouns).
        verb_frames: (B, T, d) action-level frame embeddings (individual level).
        noun_frames: (B, T, d) entity-level frame embeddings (individual level).
        verb_probs: (B, Cv) video-level verb concept probabilities (top-k MIL pooled).
        noun_probs: (B, Cn) video-level noun concept probabilities.
        top_verbs: (B, Sv) indices of the selected verb concepts, best first.
        top_nouns: (B, Sn) indices of the selected noun concepts, best first.
        lengths: (B,) number of real frames.
        verb_frame_probs: (B, T, Cv) per-frame verb concept probabilities (for explanations).
        noun_frame_probs: (B, T, Cn) per-frame noun concept probabilities.
        verb_peaks: (B, Sv) frame where each selected verb concept peaks.
        noun_peaks: (B, K, Sn) the K (= noun_topk, or 1) frames of each selected noun clip.
    """

    global_embeds: torch.Tensor
    verb_clips: torch.Tensor
    noun_clips: torch.Tensor
    verb_frames: torch.Tensor
    noun_frames: torch.Tensor
    verb_probs: torch.Tensor
    noun_probs: torch.Tensor
    top_verbs: torch.Tensor
    top_nouns: torch.Tensor
    lengths: torch.Tensor
    verb_frame_probs: Optional[torch.Tensor]
    noun_frame_probs: Optional[torch.Tensor]
    verb_peaks: torch.Tensor
    noun_peaks: torch.Tensor

    @property
    def num_frames(self) -> int:
        """T, the padded number of frames (individual-level scoring masks beyond lengths)."""
        return int(self.verb_frames.shape[1])

    def __len__(self) -> int:
        return int(self.global_embeds.shape[0])

    def select(self, index: slice | torch.Tensor) -> "VideoEncoderOutput":
        """The outputs of a subset of the videos (a slice or an index tensor)."""
        return VideoEncoderOutput(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[index]
                                     for f in fields(self)})


    def without_frame_probs(self) -> "VideoEncoderOutput":
        """Drop the (B, T, C) per-frame concept probabilities (only explanations need them)."""
        return replace(self, verb_frame_probs=None, noun_frame_probs=None)

    @staticmethod
    def cat(parts: Sequence["VideoEncoderOutput"], num_frames: Optional[int] = None) -> "VideoEncoderOutput":
        """Concatenate outputs of several batches, zero-padding per-frame fields to ``num_frames``.

        Extra zero frames are harmless for scoring: individual-level scores mask frames beyond
        each video's length.
        """
        T = num_frames or max(p.num_frames for p in parts)
        out = {}
        for f in fields(VideoEncoderOutput):
            vals = [getattr(p, f.name) for p in parts]
            if any(v is None for v in vals):
                out[f.name] = None
                continue
            if f.name in _PER_FRAME:
                vals = [F.pad(v, (0, 0, 0, T - v.shape[1])) for v in vals]
            out[f.name] = torch.cat(vals, dim=0)
        return VideoEncoderOutput(**out)


_PER_FRAME = ("verb_frames", "noun_frames", "verb_frame_probs", "noun_frame_probs")


class SqueezeExcite(nn.Module):
    """Channel gating over time: x * sigmoid(W2 relu(W1 mean_t(x))).

    Args:
        channels: feature size.
        reduction: bottleneck ratio.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc1 = nn.Linear(channels, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gate ``x``.

        Args:
            x: (B, T, C). The mean runs over all T positions, padded ones included: the
                official code pools the padded sequence, and we keep that for parity.

        Returns:
            (B, T, C) gated features.
        """
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=1)))))
        return x * gate.unsqueeze(1)


def mil_topk_mean(probs: torch.Tensor, lengths: torch.Tensor, divisor: int) -> torch.Tensor:
    """Top-k multiple-instance pooling with k = ceil(length / divisor), per sequence.

    Args:
        probs: (B, L, C) per-position probabilities in [0, 1].
        lengths: (B,) number of real positions (>= 1).
        divisor: k = ceil(length / divisor).

    Returns:
        (B, C) mean of the k highest real positions of each sequence and class.
    """
    B, L, _ = probs.shape
    pos = torch.arange(L, device=probs.device)
    valid = pos.unsqueeze(0) < lengths.unsqueeze(1)  # (B, L)
    k = torch.div(lengths + divisor - 1, divisor, rounding_mode="floor")  # ceil
    kmax = int(k.max())
    # Probabilities are >= 0, so -1 sinks padded positions below every real one; a finite
    # value keeps 0 * pad = 0 in the weighted sum below (with -inf it would be NaN).
    masked = probs.masked_fill(~valid.unsqueeze(2), -1.0)
    top = masked.topk(kmax, dim=1).values  # (B, kmax, C)
    weights = (torch.arange(kmax, device=probs.device).unsqueeze(0) < k.unsqueeze(1)).to(probs.dtype)
    weights = weights / k.unsqueeze(1).to(probs.dtype)
    return torch.einsum("bkc,bk->bc", top, weights)


def _gather_frames(frames: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Pick frames per video: frames (B, T, d), index (B, ...) -> (B, ..., d)."""
    B = frames.shape[0]
    flat = index.reshape(B, -1)
    out = frames.gather(1, flat.unsqueeze(-1).expand(-1, -1, frames.shape[-1]))
    return out.reshape(*index.shape, frames.shape[-1])


class VideoEncoder(nn.Module):
    """HANet's multilevel video encoder.

    Args:
        config: the model config (``config.video`` for sizes, concept counts from the top level).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        vc = config.video
        d = vc.dim_embed
        self.level_proj = nn.ModuleList([nn.Linear(vc.dim_input, d) for _ in range(3)])
        self.dropout = nn.Dropout(vc.dropout)
        self.global_attn = nn.Linear(d, 1)
        self.verb_conv = nn.Conv1d(d, config.num_verb_concepts, vc.verb_kernel, padding=vc.verb_kernel // 2)
        self.verb_bn = nn.BatchNorm1d(config.num_verb_concepts)
        # A kernel-1 conv over time is a linear map per frame.
        self.noun_conv = nn.Linear(d, config.num_noun_concepts)
        self.noun_bn = nn.BatchNorm1d(config.num_noun_concepts)
        self.verb_se = SqueezeExcite(d, vc.se_reduction)
        self.noun_se = SqueezeExcite(d, vc.se_reduction)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> VideoEncoderOutput:
        """Encode a batch of videos.

        Args:
            features: (B, T, D) frame features, zero-padded after each video's length.
                D = sum(config.video.dim_fts).
            lengths: (B,) int64 number of real frames, 1 <= length <= T.

        Returns:
            :class:`VideoEncoderOutput`.
        """
        cfg = self.config
        _check_video_inputs(features, lengths, cfg.video.dim_input)
        B, T, _ = features.shape
        valid = torch.arange(T, device=features.device).unsqueeze(0) < lengths.unsqueeze(1)

        # Padded frames are projected too (to the bias vector): they enter the SE mean, the
        # verb conv's receptive field and the concept BatchNorm statistics, as in the official
        # code; global attention and individual-level scoring mask them.
        event, action, entity = (self.dropout(proj(features)) for proj in self.level_proj)
        global_embeds = self._pool_event(event, valid)

        verb_logits = self.verb_conv(action.transpose(1, 2))  # (B, Cv, T)
        verb_frame_probs = torch.sigmoid(self.verb_bn(verb_logits)).transpose(1, 2)  # (B, T, Cv)
        noun_logits = self.noun_conv(entity)  # (B, T, Cn)
        noun_frame_probs = torch.sigmoid(self.noun_bn(noun_logits.reshape(B * T, -1))).reshape(B, T, -1)

        verb_probs = mil_topk_mean(verb_frame_probs, lengths, cfg.mil_divisor)
        noun_probs = mil_topk_mean(noun_frame_probs, lengths, cfg.mil_divisor)
        top_verbs = verb_probs.topk(cfg.num_selected_verbs, dim=1).indices  # (B, Sv)
        top_nouns = noun_probs.topk(cfg.num_selected_nouns, dim=1).indices  # (B, Sn)

        # Clips are built from the SE-gated level embeddings; the classifiers see ungated ones.
        verb_gated = self.verb_se(action)
        noun_gated = self.noun_se(entity)
        verb_clips, verb_peaks = self._verb_clips(verb_frame_probs, top_verbs, verb_gated, lengths, valid)
        noun_clips, noun_peaks = self._noun_clips(noun_frame_probs, top_nouns, noun_gated, lengths, valid)

        return VideoEncoderOutput(
            global_embeds=global_embeds,
            verb_clips=verb_clips,
            noun_clips=noun_clips,
            verb_frames=action,
            noun_frames=entity,
            verb_probs=verb_probs,
            noun_probs=noun_probs,
            top_verbs=top_verbs,
            top_nouns=top_nouns,
            lengths=lengths,
            verb_frame_probs=verb_frame_probs,
            noun_frame_probs=noun_frame_probs,
            verb_peaks=verb_peaks,
            noun_peaks=noun_peaks,
        )

    def _pool_event(self, event: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        attn = self.global_attn(event).squeeze(2).masked_fill(~valid, -1e18).softmax(dim=1)
        return torch.einsum("bt,btd->bd", attn, event)

    def encode_global(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Only the event-level embedding, (B, d): what the global-only variant trains.

        Equal to ``forward(...).global_embeds`` (the event level does not depend on the others)
        at a third of the projection cost.
        """
        _check_video_inputs(features, lengths, self.config.video.dim_input)
        valid = torch.arange(features.shape[1], device=features.device).unsqueeze(0) < lengths.unsqueeze(1)
        return self._pool_event(self.dropout(self.level_proj[0](features)), valid)

    def _verb_clips(self, frame_probs: torch.Tensor, top: torch.Tensor, gated: torch.Tensor,
                    lengths: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean of a window of frames around each selected verb concept's peak.

        Official behaviour kept for parity: the window is used only if *every* selected
        concept's window fits inside the video (2 <= peak <= length - 3 for a 5-frame window);
        otherwise every verb clip of that video is its single peak frame.
        """
        sel = frame_probs.gather(2, top.unsqueeze(1).expand(-1, frame_probs.shape[1], -1))  # (B, T, Sv)
        peaks = sel.masked_fill(~valid.unsqueeze(2), -1.0).argmax(dim=1)  # (B, Sv), first max
        window, fits = verb_clip_windows(peaks, lengths, self.config.verb_window, gated.shape[1])
        window_mean = _gather_frames(gated, window).mean(dim=2)
        single = _gather_frames(gated, peaks)
        return torch.where(fits.view(-1, 1, 1), window_mean, single), peaks

    def _noun_clips(self, frame_probs: torch.Tensor, top: torch.Tensor, gated: torch.Tensor,
                    lengths: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean of the K highest frames of each selected noun concept (K = noun_topk).

        Official behaviour kept for parity: videos of at most K - 1 frames use the single
        peak frame instead.
        """
        T = frame_probs.shape[1]
        K = self.config.noun_topk
        sel = frame_probs.gather(2, top.unsqueeze(1).expand(-1, T, -1))  # (B, T, Sn)
        sel = sel.masked_fill(~valid.unsqueeze(2), -1.0)
        peak = sel.argmax(dim=1, keepdim=True)  # (B, 1, Sn)
        single = _gather_frames(gated, peak).squeeze(1)
        if T < K:
            return single, peak
        topk = sel.topk(K, dim=1).indices  # (B, K, Sn)
        mean_k = _gather_frames(gated, topk).mean(dim=1)
        use_k = lengths > K - 1
        clips = torch.where(use_k.view(-1, 1, 1), mean_k, single)
        frames = torch.where(use_k.view(-1, 1, 1), topk, peak.expand_as(topk))
        return clips, frames


def _check_video_inputs(features: torch.Tensor, lengths: torch.Tensor, dim_input: int) -> None:
    if features.dim() != 3:
        raise ShapeError(f"video features must be (batch, frames, dim), got shape {tuple(features.shape)}")
    if features.shape[2] != dim_input:
        raise ShapeError(
            f"video features have dim {features.shape[2]} but the model expects {dim_input} "
            f"(config video.dim_fts)")
    if lengths.dim() != 1 or lengths.shape[0] != features.shape[0]:
        raise ShapeError(f"video lengths must be ({features.shape[0]},), got shape {tuple(lengths.shape)}")
    if lengths.numel() and (int(lengths.min()) < 1 or int(lengths.max()) > features.shape[1]):
        raise ShapeError(
            f"video lengths must be in [1, {features.shape[1]}], got min {int(lengths.min())} "
            f"max {int(lengths.max())} (a video with zero frames cannot be encoded)")
    if features.is_floating_point() and not torch.isfinite(features).all():
        bad = (~torch.isfinite(features)).flatten(1).any(1).nonzero().flatten().tolist()
        raise ShapeError(f"video features contain NaN or inf (batch rows {bad[:10]})")


def verb_clip_windows(peaks: torch.Tensor, lengths: torch.Tensor, window: int,
                      num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The frames each verb clip averages (the one place the rule lives; explanations read it).

    Official rule, kept for parity: a window of ``window`` frames centred on each selected
    concept's peak, used only if *every* selected concept's window fits inside the video;
    otherwise every verb clip of that video is its single peak frame.

    Args:
        peaks: (B, Sv) the frame where each selected verb concept peaks.
        lengths: (B,) real frames.
        window: frames per clip (odd).
        num_frames: T, the padded frame count (indices are clamped to it).

    Returns:
        ``(frames (B, Sv, window) int64, fits (B,) bool)``: where ``fits`` is False the clip is
        ``peaks`` alone.
    """
    half = window // 2
    fits = (peaks.min(dim=1).values >= half) & (peaks.max(dim=1).values + half < lengths)  # (B,)
    offsets = torch.arange(-half, half + 1, device=peaks.device)
    return (peaks.unsqueeze(2) + offsets).clamp(0, num_frames - 1), fits


def video_padding_mask(lengths: torch.Tensor, num_frames: int) -> torch.Tensor:
    """(B, T) bool, True at real frames."""
    return torch.arange(num_frames, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


__all__ = ["VideoEncoder", "VideoEncoderOutput", "SqueezeExcite", "mil_topk_mean", "verb_clip_windows",
           "video_padding_mask"]
