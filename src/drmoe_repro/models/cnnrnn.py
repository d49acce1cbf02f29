"""CNN-RNN (Wang et al. 2016): an LSTM that decodes an image's labels one by one, most frequent label first.

image -> backbone -> global average pooling -> I [B, C]
tokens: the L labels, END (index L) and START (index L + 1, input only), embedded by U [L + 2, E]
step t: r_t = LSTM(U[y_{t-1}]) [B, Hr];  o_t = ReLU(W_r r_t + W_I I) [B, E];  p_t = softmax(o_t U[:L+1]^T + b)
The output layer reuses the label embedding matrix (Wang et al.'s joint label/image embedding space).

Training (teacher forcing, no beam search): the target sequence of an image is its positive labels in frequency
order (from the training labels; ignored -1 labels count as absent) followed by END; "loss" is the token-averaged
cross-entropy of that sequence and replaces the BCE in the engine.

Inference: beam search over label sets (`cnnrnn_beam` beams, summed log-probabilities, no length normalisation).
A beam may only append a label later in the frequency order than its last one (the order it was trained on; this
also rules out repeats and bounds decoding at L + 1 steps) or END.

Evaluation. The label set the beam search decodes is the model's prediction: `forward` returns it as "decisions"
and evaluation computes OF1, CF1 and their top-k variants from it (metrics.py, `dec=beam`), as CNN-RNN's F1s were
reported; nothing is thresholded.

Per-label scores for mAP. The decoder gives a label set, not a score per label; the rule used here is
    score_c = max over the decoding steps t of p_t(c), along the best beam's path,
with p_t the model's unmasked softmax at step t. Every label gets a score in [0, 1]; a decoded label scores at least
the probability with which it was emitted. "logits" = logit(score) clamped to [1e-6, 1 - 1e-6]. In training mode the
same rule is applied along the teacher-forced path (steps up to END), so "logits" there is cheap and differentiable.
Config keys: `cnnrnn_embed` (E), `cnnrnn_hidden` (Hr), `cnnrnn_beam`.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from drmoe_repro.models.backbone import build_backbone, global_avg_pool
from drmoe_repro.models.label_graph import frequency_order
from drmoe_repro.models.registry import DataInfo, register_model

IGNORE = -100  # marks the steps after END in a target sequence (no loss there)
SCORE_EPS = 1e-6


def score_logits(scores: torch.Tensor) -> torch.Tensor:
    """Probabilities [B, L] -> logits, clamped so that a score of 0 or 1 stays finite."""
    return torch.logit(scores.clamp(SCORE_EPS, 1 - SCORE_EPS))


class CNNRNN(nn.Module):
    def __init__(self, cfg: dict, data: DataInfo):
        super().__init__()
        num_labels = data.num_labels
        embed, hidden = cfg["cnnrnn_embed"], cfg["cnnrnn_hidden"]
        self.num_labels, self.end, self.start = num_labels, num_labels, num_labels + 1
        self.beam_width = cfg["cnnrnn_beam"]
        self.backbone = build_backbone(cfg, data.backbone_weights)
        self.embedding = nn.Parameter(torch.randn(num_labels + 2, embed) * 0.1)  # [L + 2, E]
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.recurrent_proj = nn.Linear(hidden, embed)
        self.image_proj = nn.Linear(self.backbone.num_channels, embed)
        self.out_bias = nn.Parameter(torch.zeros(num_labels + 1))  # [L + 1]
        order = torch.as_tensor(frequency_order(data.train_targets), dtype=torch.long)  # [L]
        rank = torch.empty_like(order)
        rank[order] = torch.arange(num_labels)
        self.register_buffer("rank", rank, persistent=False)  # [L]: 0 for the most frequent label

    # ----------------------------------------------------------------------------------------------------------
    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids [...] -> U[tokens] [..., E], as a one-hot product (a deterministic backward on CUDA)."""
        return F.one_hot(tokens, self.num_labels + 2).to(self.embedding.dtype) @ self.embedding

    def step_log_probs(self, recurrent: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """r [..., Hr], W_I I [..., E] -> log p over the L labels and END [..., L + 1]."""
        joint = F.relu(self.recurrent_proj(recurrent) + image)  # [..., E]
        return torch.log_softmax(joint @ self.embedding[: self.num_labels + 1].t() + self.out_bias, dim=-1)

    def target_sequences(self, targets: torch.Tensor) -> torch.Tensor:
        """[B, L] in {1, 0, -1} -> [B, T] token ids: positives in frequency order, END, then IGNORE; T = max + 1."""
        present = targets > 0  # [B, L]: ignored (-1) counts as absent
        key = torch.where(present, self.rank[None], self.rank[None] + self.num_labels)  # [B, L]
        ordered = key.argsort(dim=1)  # [B, L]: present labels first, each group in frequency order
        counts = present.sum(dim=1)  # [B]
        length = int(counts.max()) + 1
        steps = torch.arange(length, device=targets.device)[None]  # [1, T]
        padded = F.pad(ordered, (0, 1), value=self.end)[:, :length]  # [B, T]
        tokens = torch.where(steps < counts[:, None], padded, torch.full_like(padded, self.end))  # [B, T]
        return torch.where(steps <= counts[:, None], tokens, torch.full_like(tokens, IGNORE))  # [B, T]

    def teacher_forced(self, image: torch.Tensor, targets: torch.Tensor) -> dict:
        sequence = self.target_sequences(targets)  # [B, T]
        start = sequence.new_full((sequence.shape[0], 1), self.start)  # [B, 1]
        inputs = torch.cat([start, sequence[:, :-1].clamp_min(0)], dim=1)  # [B, T]; padded steps are masked below
        recurrent, _ = self.lstm(self.embed(inputs))  # [B, T, Hr]
        log_probs = self.step_log_probs(recurrent, image[:, None, :])  # [B, T, L + 1]
        valid = (sequence != IGNORE)[..., None]  # [B, T, 1]
        # Cross-entropy as a one-hot product rather than nll_loss/gather: deterministic on CUDA as well.
        picked = (log_probs * F.one_hot(sequence.clamp_min(0), self.num_labels + 1)).sum(-1)  # [B, T]
        loss = -(picked * valid[..., 0]).sum() / valid.sum()
        probs = torch.where(valid, log_probs.exp(), torch.zeros_like(log_probs))  # [B, T, L + 1]
        scores = probs[..., : self.num_labels].amax(dim=1)  # [B, L]
        return {"logits": score_logits(scores), "loss": loss}

    @torch.no_grad()
    def beam_search(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """W_I I [B, E] -> (scores [B, L] in [0, 1] by the max-over-steps rule, decoded label set [B, L] bool)."""
        batch, beams, labels = image.shape[0], self.beam_width, self.num_labels
        device = image.device
        vocab = labels + 1
        image = image[:, None, :].expand(batch, beams, -1)  # [B, K, E]
        hidden = image.new_zeros(1, batch * beams, self.lstm.hidden_size)  # [1, BK, Hr]
        cell = torch.zeros_like(hidden)
        token = torch.full((batch, beams), self.start, dtype=torch.long, device=device)  # [B, K]
        last_rank = torch.full((batch, beams), -1, dtype=torch.long, device=device)  # [B, K]
        score = torch.full((batch, beams), -math.inf, device=device)  # [B, K]
        score[:, 0] = 0.0  # one live beam at the start, so the K beams do not duplicate each other
        finished = torch.zeros(batch, beams, dtype=torch.bool, device=device)  # [B, K]
        best_prob = image.new_zeros(batch, beams, labels)  # [B, K, L]: max over steps of p_t(c)
        chosen = torch.zeros(batch, beams, labels, dtype=torch.bool, device=device)  # [B, K, L]
        batch_index = torch.arange(batch, device=device)[:, None]  # [B, 1]
        for _ in range(labels + 1):
            recurrent, (hidden, cell) = self.lstm(self.embed(token).reshape(batch * beams, 1, -1), (hidden, cell))
            log_probs = self.step_log_probs(recurrent.reshape(batch, beams, -1), image)  # [B, K, L + 1]
            live = ~finished[..., None]  # [B, K, 1]
            best_prob = torch.where(live, torch.maximum(best_prob, log_probs[..., :labels].exp()), best_prob)
            allowed = torch.cat([self.rank[None, None] > last_rank[..., None],
                                 torch.ones(batch, beams, 1, dtype=torch.bool, device=device)], dim=-1)  # [B, K, L+1]
            candidates = log_probs.masked_fill(~allowed, -math.inf)  # [B, K, L + 1]
            # A finished beam continues only as itself (token END, log-prob 0) so it keeps its score.
            stay = torch.full_like(candidates, -math.inf)
            stay[..., self.end] = 0.0
            candidates = torch.where(live, candidates, stay)
            total = (score[..., None] + candidates).reshape(batch, beams * vocab)  # [B, K(L + 1)]
            score, flat = total.topk(beams, dim=1)  # [B, K]
            parent, token = flat // vocab, flat % vocab  # [B, K]
            is_label = token < labels  # [B, K]
            best_prob, chosen = best_prob[batch_index, parent], chosen[batch_index, parent]  # [B, K, L]
            chosen = chosen | (F.one_hot(token, vocab)[..., :labels].bool() & is_label[..., None])
            last_rank = torch.where(is_label, self.rank[token.clamp_max(labels - 1)], last_rank[batch_index, parent])
            finished = finished[batch_index, parent] | (token == self.end)
            flat_parent = (batch_index * beams + parent).reshape(-1)  # [BK] rows of the LSTM state to carry on
            hidden, cell = hidden[:, flat_parent], cell[:, flat_parent]
            if bool(finished.all()):
                break
        best = score.argmax(dim=1)  # [B]
        rows = torch.arange(batch, device=device)
        return best_prob[rows, best], chosen[rows, best]  # [B, L], [B, L]

    # ----------------------------------------------------------------------------------------------------------
    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.image_proj(global_avg_pool(self.backbone(images)))  # [B, E]: W_I I

    def decode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Beam search on a batch of images: (scores [B, L], decoded label sets [B, L] bool)."""
        return self.beam_search(self.image_features(images))

    def forward(self, images: torch.Tensor, targets: torch.Tensor | None = None) -> dict:
        image = self.image_features(images)  # [B, E]
        if self.training and targets is not None:
            return self.teacher_forced(image, targets)
        scores, decided = self.beam_search(image)
        # The decided label sets are CNN-RNN's predictions (its F1s are computed from them); scores serve AP.
        return {"logits": score_logits(scores), "decisions": decided}  # [B, L], [B, L] bool


@register_model
def cnn_rnn(cfg: dict, data: DataInfo) -> nn.Module:
    """CNN-RNN: frequency-ordered LSTM label decoder, beam search at inference, max-over-steps label scores."""
    return CNNRNN(cfg, data)
