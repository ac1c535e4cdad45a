"""The role-graph text encoder: sentence (event), verb (action) and noun (entity) levels.

Words go through an embedding and a BiGRU whose two directions are averaged. Attention pools
the words into the sentence embedding; verb and noun phrases are max-pooled over their word
spans, scaled by a semantic-role embedding, and contextualised by an attention GCN over the
caption's role graph (sentence -> verbs, verbs <-> their arguments). Two concept heads predict
verb and noun concepts per word, pooled with the same top-k MIL as the video side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Callable, Optional

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from hanet.config import ModelConfig
from hanet.errors import ShapeError
from hanet.model.video import mil_topk_mean


@dataclass
class TextEncoderOutput:
    """Outputs of :class:`TextEncoder` for B captions padded to L words (h = rnn_hidden_size).

    Attributes:
        global_embeds: (B, h) sentence embedding after the GCN (the graph's root node).
        verb_embeds: (B, Pv, h) verb phrase embeddings after the GCN (local level).
        noun_embeds: (B, Pn, h) noun phrase embeddings after the GCN (local level).
        verb_phrases: (B, Pv, h) max-pooled verb phrases before role scaling and GCN
            (individual level).
        noun_phrases: (B, Pn, h) max-pooled noun phrases before the GCN (individual level).
        verb_probs: (B, Cv) caption-level verb concept probabilities.
        noun_probs: (B, Cn) caption-level noun concept probabilities.
        verb_lens: (B, Pv) number of words in each verb phrase slot (0: empty slot).
        noun_lens: (B, Pn) number of words in each noun phrase slot.
        lengths: (B,) number of words.
        word_attn: (B, L) attention weights of the words in the sentence embedding.
        verb_phrase_probs: (B, Pv, Cv) each verb phrase's verb concept probabilities (the
            per-word head's, max over the phrase's words; 0 for an empty slot), or None: what
            a phrase is about, for its time span (:mod:`hanet.model.moments`); scoring never reads it.
    """

    global_embeds: torch.Tensor
    verb_embeds: torch.Tensor
    noun_embeds: torch.Tensor
    verb_phrases: torch.Tensor
    noun_phrases: torch.Tensor
    verb_probs: torch.Tensor
    noun_probs: torch.Tensor
    verb_lens: torch.Tensor
    noun_lens: torch.Tensor
    lengths: torch.Tensor
    word_attn: torch.Tensor
    verb_phrase_probs: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return int(self.global_embeds.shape[0])

    def select(self, index: slice | torch.Tensor) -> "TextEncoderOutput":
        """The outputs of a subset of the captions (word-level fields keep their width)."""
        return TextEncoderOutput(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[index]
                                    for f in fields(self)})



class GCNLayer(nn.Module):
    """One graph-convolution layer with a residual connection and LayerNorm.

    With ``attention`` the neighbours are weighted by scaled dot-product attention restricted
    to the graph's edges; without it by the (row-normalised) adjacency itself.

    Args:
        dim: node embedding size.
        attention: use edge attention.
        dropout: dropout on the aggregated messages.
    """

    def __init__(self, dim: int, attention: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.attention = attention
        self.ctx_proj = nn.Linear(dim, dim, bias=False)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        if attention:
            d_attn = dim // 2
            self.query = nn.Linear(dim, d_attn)
            self.key = nn.Linear(dim, d_attn)
            self.scale = 1.0 / math.sqrt(d_attn)

    def forward(self, nodes: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        """Update node embeddings.

        Args:
            nodes: (B, N, h) node embeddings.
            edges: (B, N, N) adjacency, ``edges[b, i, j] != 0`` if node i receives from node j.

        Returns:
            (B, N, h) updated node embeddings.
        """
        if self.attention:
            scores = torch.einsum("bid,bjd->bij", self.query(nodes), self.key(nodes)) * self.scale
            no_edge = edges == 0
            weights = scores.masked_fill(no_edge, -1e18).softmax(dim=2)
            # A node without any incoming edge gets a uniform softmax; zero it instead.
            weights = weights.masked_fill(no_edge, 0.0)
        else:
            weights = edges
        context = self.ctx_proj(torch.bmm(weights, nodes))
        return self.norm(nodes + self.dropout(context))


class TextEncoder(nn.Module):
    """HANet's role-graph text encoder.

    Args:
        config: the model config (``config.text`` for sizes, concept counts from the top level).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        tc = config.text
        h = tc.rnn_hidden_size
        self.word_embed = nn.Embedding(tc.num_words, tc.dim_word)
        if tc.fix_word_embed:
            self.word_embed.weight.requires_grad_(False)
        self.rnn = nn.GRU(tc.dim_word, h, num_layers=1, bidirectional=True, batch_first=True)
        self.dropout = nn.Dropout(tc.dropout)
        self.word_attn = nn.Linear(h, 1)
        self.role_embed = nn.Embedding(tc.num_roles, h)
        self.gcn = nn.ModuleList(
            [GCNLayer(h, attention=tc.gcn_attention, dropout=tc.gcn_dropout) for _ in range(tc.gcn_num_layers)])
        self.verb_head = nn.Linear(h, config.num_verb_concepts)
        self.verb_bn = nn.BatchNorm1d(config.num_verb_concepts)
        self.noun_head = nn.Linear(h, config.num_noun_concepts)
        self.noun_bn = nn.BatchNorm1d(config.num_noun_concepts)

    def encode_words(self, word_ids: torch.Tensor, lengths: torch.Tensor,
                     before_recurrence: Optional[Callable[[], object]] = None) -> torch.Tensor:
        """BiGRU word states, directions averaged.

        Args:
            word_ids: (B, L) int64 word ids.
            lengths: (B,) int64 number of words (>= 1).
            before_recurrence: called once, right before the GRU's recurrence, with no torch
                call left between it and the recurrence: work it starts on another thread
                (a query's parse) then runs while the recurrence, which releases the GIL,
                streams its weights. Without that ordering the other thread would take the GIL
                at one of the small ops before and keep it for Python's switch interval (5 ms).

        Returns:
            (B, L, h) word states, exactly zero after each caption's length.
        """
        embeds = self.dropout(self.word_embed(word_ids))
        if not self.training and bool((lengths == word_ids.shape[1]).all()):
            # nothing padded (a single query): the same GRU without packing, which computes the
            # input projections of all steps in one product instead of one per step; the same
            # values (tested), ~2 ms less per query at MSR-VTT's sizes. The initial state is
            # made here (zeros, the GRU's own default) so that no op runs after the callback.
            hx = embeds.new_zeros(2, embeds.shape[0], self.rnn.hidden_size)
            if before_recurrence is not None:
                before_recurrence()
            out, _ = self.rnn(embeds, hx)
        else:
            packed = pack_padded_sequence(embeds, lengths.cpu(), batch_first=True, enforce_sorted=False)
            if before_recurrence is not None:
                before_recurrence()
            out, _ = self.rnn(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=word_ids.shape[1])
        fwd, bwd = out.chunk(2, dim=2)
        return (fwd + bwd) / 2

    def _word_concepts(self, words: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-word verb and noun concept probabilities, (B, L, Cv) and (B, L, Cn).

        In training the heads' BatchNorm sees the padded (all-zero) word states too, as in the
        official code (they move its batch statistics). In eval mode BatchNorm is per element,
        so only real words are computed; padded positions are left at 0 (MIL pooling never
        reads them).
        """
        B, L, h = words.shape
        if self.training:
            flat = words.reshape(B * L, h)
            verb = torch.sigmoid(self.verb_bn(self.verb_head(flat))).reshape(B, L, -1)
            noun = torch.sigmoid(self.noun_bn(self.noun_head(flat))).reshape(B, L, -1)
            return verb, noun
        real = words[valid]  # (N, h)
        out = []
        for head, bn in ((self.verb_head, self.verb_bn), (self.noun_head, self.noun_bn)):
            probs = torch.sigmoid(bn(head(real)))
            full = probs.new_zeros(B, L, probs.shape[1])
            full[valid] = probs
            out.append(full)
        return out[0], out[1]

    def forward(self, word_ids: torch.Tensor, lengths: torch.Tensor, verb_masks: torch.Tensor,
                noun_masks: torch.Tensor, node_roles: torch.Tensor, edges: torch.Tensor,
                words: Optional[torch.Tensor] = None) -> TextEncoderOutput:
        """Encode a batch of captions with their role graphs.

        Args:
            word_ids: (B, L) int64 word ids, padded with any id after each length.
            lengths: (B,) int64 number of words, 1 <= length <= L.
            verb_masks: (B, Pv, L) bool, the words of each verb phrase slot.
            noun_masks: (B, Pn, L) bool, the words of each noun phrase (argument) slot.
            node_roles: (B, Pv + Pn) int64 semantic-role id of each phrase slot.
            edges: (B, 1 + Pv + Pn, 1 + Pv + Pn) float adjacency of the role graph (node 0 is
                the sentence, then the verb slots, then the noun slots).
            words: (B, L, h) :meth:`encode_words` of these word ids when already computed (a
                query's, while its role graph was parsed); None computes them.

        Returns:
            :class:`TextEncoderOutput`.
        """
        cfg = self.config
        _check_text_inputs(word_ids, lengths, verb_masks, noun_masks, node_roles, edges, cfg)
        B, L = word_ids.shape
        if words is None:
            words = self.encode_words(word_ids, lengths)  # (B, L, h)
        elif words.shape != (B, L, self.rnn.hidden_size):
            raise ShapeError(f"words: expected {(B, L, self.rnn.hidden_size)} (B, L, h), got {tuple(words.shape)}")
        valid = torch.arange(L, device=word_ids.device).unsqueeze(0) < lengths.unsqueeze(1)
        attn = self.word_attn(words).squeeze(2).masked_fill(~valid, -1e18).softmax(dim=1)
        sent = torch.einsum("bl,blh->bh", attn, words)

        verb_word_probs, noun_word_probs = self._word_concepts(words, valid)
        verb_probs = mil_topk_mean(verb_word_probs, lengths, cfg.mil_divisor)
        noun_probs = mil_topk_mean(noun_word_probs, lengths, cfg.mil_divisor)

        verb_phrases = _max_pool_phrases(words, verb_masks)
        noun_phrases = _max_pool_phrases(words, noun_masks)
        nv = verb_masks.shape[1]
        roles = self.role_embed(node_roles)  # (B, Pv + Pn, h)
        nodes = torch.cat([sent.unsqueeze(1), verb_phrases * roles[:, :nv], noun_phrases * roles[:, nv:]], dim=1)
        for layer in self.gcn:
            nodes = layer(nodes, edges)

        return TextEncoderOutput(
            global_embeds=nodes[:, 0],
            verb_embeds=nodes[:, 1:1 + nv],
            noun_embeds=nodes[:, 1 + nv:],
            verb_phrases=verb_phrases,
            noun_phrases=noun_phrases,
            verb_probs=verb_probs,
            noun_probs=noun_probs,
            verb_lens=verb_masks.sum(dim=2),
            noun_lens=noun_masks.sum(dim=2),
            lengths=lengths,
            word_attn=attn,
            # only for time spans at search time: training never needs it
            verb_phrase_probs=None if self.training else _max_pool_phrases(verb_word_probs, verb_masks).clamp_min(0.0),
        )


def _max_pool_phrases(words: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Max over each phrase's words.

    Args:
        words: (B, L, h) word states.
        masks: (B, P, L) bool phrase masks.

    Returns:
        (B, P, h). Empty slots come out as -1e10 everywhere: the official fill value, kept
        because those values travel through the GCN (and so into the reference outputs);
        scoring masks empty slots out. Phrases are short and most slots are empty, so only the
        (phrase, word) pairs of the masks are gathered and max-reduced into their slots.
    """
    B, P, L = masks.shape
    h = words.shape[2]
    b, p, w = masks.nonzero(as_tuple=True)  # one row per (phrase, word) pair
    out = words.new_full((B * P, h), -1e10)
    if b.numel():
        slot = (b * P + p).unsqueeze(1).expand(-1, h)
        out = out.scatter_reduce(0, slot, words[b, w], reduce="amax", include_self=True)
    return out.view(B, P, h)


def _check_text_inputs(word_ids, lengths, verb_masks, noun_masks, node_roles, edges, cfg: ModelConfig) -> None:
    if word_ids.dim() != 2:
        raise ShapeError(f"word_ids must be (batch, words), got shape {tuple(word_ids.shape)}")
    B, L = word_ids.shape
    if lengths.shape != (B,):
        raise ShapeError(f"caption lengths must be ({B},), got {tuple(lengths.shape)}")
    if B and int(lengths.min()) < 1:
        empty = (lengths < 1).nonzero().flatten().tolist()
        raise ShapeError(f"captions must have at least one word; empty at batch rows {empty[:10]}")
    if B and int(lengths.max()) > L:
        raise ShapeError(f"caption length {int(lengths.max())} exceeds word_ids width {L}")
    if B and (int(word_ids.min()) < 0 or int(word_ids.max()) >= cfg.text.num_words):
        raise ShapeError(f"word ids must be in [0, {cfg.text.num_words}) (vocabulary size), "
                         f"got [{int(word_ids.min())}, {int(word_ids.max())}]")
    nv, nn_ = verb_masks.shape[1], noun_masks.shape[1]
    if verb_masks.shape != (B, nv, L) or noun_masks.shape != (B, nn_, L):
        raise ShapeError(f"phrase masks must be (batch, slots, {L}); got verb {tuple(verb_masks.shape)}, "
                         f"noun {tuple(noun_masks.shape)}")
    if node_roles.shape != (B, nv + nn_):
        raise ShapeError(f"node_roles must be ({B}, {nv + nn_}), got {tuple(node_roles.shape)}")
    n = 1 + nv + nn_
    if edges.shape != (B, n, n):
        raise ShapeError(f"edges must be ({B}, {n}, {n}), got {tuple(edges.shape)}")


__all__ = ["TextEncoder", "TextEncoderOutput", "GCNLayer"]
