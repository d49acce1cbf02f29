"""Label statistics for the graph and sequence baselines: ML-GCN's co-occurrence graph, label embeddings, label order.

Everything here is computed once, at model construction, from `DataInfo.train_targets` [N, L] (1 positive, 0
negative, -1 ignored). Only positives count: an ignored label (VOC "difficult" under `difficult_in_training:
ignore`) is treated as absent.

ML-GCN's correlation matrix (Chen et al. 2019, §3.4):
  1. conditional probabilities P[i, j] = P(L_j | L_i) = count(i, j) / count(i), the diagonal set to 0 (a label's
     co-occurrence with itself is not an edge), a row of 0 for a label with no positive;
  2. binarised: A[i, j] = 1 if P[i, j] >= tau else 0 (tau = 0.4);
  3. re-weighted with p, in one of two variants that disagree:
     - "paper" (the ML-GCN paper's eq 8): A'[i, j] = p * A[i, j] / sum_{k != i} A[i, k] off the diagonal and
       A'[i, i] = 1 - p, so a row with neighbours sums to 1;
     - "published" (the released code, which the paper's numbers come from): every column j of A is scaled to sum
       to p, A'[i, j] = p * A[i, j] / sum_k A[k, j], and the identity is added (a diagonal of 1, not 1 - p);
  4. normalised for the GCN: "paper" uses D^-1/2 A' D^-1/2 with D the row sums of A'; the released code computes
     D^-1/2 A'^T D^-1/2 (D still the row sums of A'), i.e. it propagates along the transposed graph, and
     "published" keeps that.
The paper says p = 0.2; the code uses p = 0.25.
"""

from __future__ import annotations

import numpy as np
import torch

GLOVE_DIM = 300
RANDOM_EMBEDDING_SEED = 2019  # fixed: the random label embedding is part of the model, not of the run's seed


def positives(train_targets: np.ndarray) -> np.ndarray:
    """[N, L] in {1, 0, -1} -> [N, L] float64 in {1, 0}: ignored labels count as absent."""
    return (np.asarray(train_targets) == 1).astype(np.float64)


def label_counts(train_targets: np.ndarray) -> np.ndarray:
    """Number of training images in which each label is positive: [L]."""
    return positives(train_targets).sum(axis=0)


def conditional_probabilities(train_targets: np.ndarray) -> np.ndarray:
    """P[i, j] = P(label j present | label i present) from positives only, diagonal 0: [L, L]."""
    pos = positives(train_targets)  # [N, L]
    together = pos.T @ pos  # [L, L]: count(i, j); the diagonal is count(i)
    counts = np.diag(together).copy()  # [L]
    probs = np.divide(together, counts[:, None], out=np.zeros_like(together), where=counts[:, None] > 0)  # [L, L]
    np.fill_diagonal(probs, 0.0)
    return probs


def binarise(probs: np.ndarray, tau: float) -> np.ndarray:
    """A[i, j] = 1 where P[i, j] >= tau (ML-GCN drops the rare, noisy edges below tau): [L, L] in {0, 1}."""
    return (probs >= tau).astype(np.float64)


def reweight(binary: np.ndarray, p: float, variant: str) -> np.ndarray:
    """Spread weight p over a node's neighbours and keep the rest on the node itself (see the module docstring)."""
    binary = binary.copy()
    np.fill_diagonal(binary, 0.0)
    num_labels = binary.shape[0]
    if variant == "paper":
        row_sums = binary.sum(axis=1, keepdims=True)  # [L, 1]
        out = np.divide(p * binary, row_sums, out=np.zeros_like(binary), where=row_sums > 0)  # [L, L]
        np.fill_diagonal(out, 1.0 - p)
        return out
    if variant == "published":
        col_sums = binary.sum(axis=0, keepdims=True)  # [1, L]
        out = np.divide(p * binary, col_sums, out=np.zeros_like(binary), where=col_sums > 0)  # [L, L]
        return out + np.eye(num_labels)
    raise ValueError(f"unknown ML-GCN re-weighting variant {variant!r}; expected 'paper' or 'published'")


def normalise_adjacency(adj: np.ndarray, variant: str) -> np.ndarray:
    """D^-1/2 A D^-1/2 ("paper") or the released code's D^-1/2 A^T D^-1/2 ("published"); D = row sums of A."""
    degree = adj.sum(axis=1)  # [L]; >= 1 - p > 0 on the diagonal alone, so never 0
    inv_sqrt = 1.0 / np.sqrt(degree)  # [L]
    matrix = adj if variant == "paper" else adj.T
    return inv_sqrt[:, None] * matrix * inv_sqrt[None, :]  # [L, L]


def mlgcn_adjacency(
    train_targets: np.ndarray, tau: float = 0.4, p: float = 0.25, variant: str = "published"
) -> torch.Tensor:
    """The normalised correlation matrix Â that ML-GCN's GCN layers multiply by: float32 [L, L]."""
    probs = conditional_probabilities(train_targets)  # [L, L]
    adj = reweight(binarise(probs, tau), p, variant)  # [L, L]
    return torch.from_numpy(normalise_adjacency(adj, variant)).float()


def random_label_embedding(num_labels: int, dim: int = GLOVE_DIM, seed: int = RANDOM_EMBEDDING_SEED) -> torch.Tensor:
    """A fixed Gaussian vector per label, N(0, 1/dim) entries so each has norm ~1: float32 [L, dim].

    The fallback when no GloVe file is given (the demo, whose synthetic classes have no meaningful names). ML-GCN's
    own ablation (Fig. 6 of Chen et al.) found one-hot label inputs almost as good as word vectors: the graph, not
    the embedding, carries the label correlations. Random Gaussian vectors in 300-d are nearly orthogonal, i.e. a
    one-hot code of GloVe's width, which keeps the GCN's shapes of the paper. An embedding derived from the
    co-occurrence statistics was not chosen: it would feed the graph's information in twice.
    """
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(num_labels, dim, generator=gen) / dim**0.5  # [L, dim]


def label_embedding(kind: str, label_names: tuple[str, ...], glove_vectors: torch.Tensor | None) -> torch.Tensor:
    """The GCN's input node features: float32 [L, 300].

    "glove": the GloVe 300-d vectors of the label names (multi-word names averaged, see `data.pretrained.load_glove`),
    which the engine reads from the fetched glove_6B asset and passes in; their absence is an error rather than a
    silent switch to another embedding.
    "random": `random_label_embedding`, for data without meaningful label names (the demo).
    """
    if kind == "glove":
        if glove_vectors is None:
            raise ValueError("model.label_embedding is 'glove' but no GloVe label vectors were given to the model")
        if tuple(glove_vectors.shape) != (len(label_names), GLOVE_DIM):
            raise ValueError(f"GloVe label vectors have shape {tuple(glove_vectors.shape)}, expected "
                             f"({len(label_names)}, {GLOVE_DIM})")
        return glove_vectors.float()  # [L, 300]
    if kind == "random":
        return random_label_embedding(len(label_names))
    raise ValueError(f"unknown label_embedding {kind!r}; expected 'glove' or 'random'")


def frequency_order(train_targets: np.ndarray) -> np.ndarray:
    """Label indices from the most to the least frequent positive in training (ties: lower index first): [L]."""
    counts = label_counts(train_targets)  # [L]
    return np.argsort(-counts, kind="stable")
