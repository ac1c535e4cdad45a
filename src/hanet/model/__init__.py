"""HANet model: encoders (``video``, ``text``), scoring, losses, and the official-code bridge."""

from hanet.model.hanet import HANet, LossOutput, VARIANTS
from hanet.model.scoring import SCORE_NAMES, ScoreOutput, compute_scores
from hanet.model.text import TextEncoder, TextEncoderOutput
from hanet.model.video import VideoEncoder, VideoEncoderOutput

__all__ = ["HANet", "LossOutput", "VARIANTS", "SCORE_NAMES", "ScoreOutput", "compute_scores",
           "TextEncoder", "TextEncoderOutput", "VideoEncoder", "VideoEncoderOutput"]
