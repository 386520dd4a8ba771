r"""Detection scores on the host (NumPy, float64).

:func:`roc_auc` is the area under the ROC curve of a score that should be higher for
the positive class (an anomaly detector's reconstruction error, positives = anomalies):

    AUC = P(s_+ > s_-) + \tfrac12 P(s_+ = s_-)
        = (R_+ - n_+ (n_+ + 1) / 2) / (n_+ n_-)      (Mann-Whitney U),

R_+ the sum of the positives' ranks among all n scores (1 = lowest), tied scores sharing
their mean rank, so a tie counts one half: one sort, O(n log n), instead of the n_+ n_-
pairwise comparisons. 1 separates perfectly, 0.5 is chance (or every score equal).
"""

from __future__ import annotations

import numpy as np
import scipy.stats


def roc_auc(scores, positive) -> float:
    """ROC AUC of ``scores`` (N,) for the boolean labels ``positive`` (N,); see the module docstring."""
    s = np.asarray(scores, np.float64).ravel()
    pos = np.asarray(positive).ravel().astype(bool)
    if s.shape != pos.shape:
        raise ValueError(f"roc_auc: {s.size} scores but {pos.size} labels")
    if not np.all(np.isfinite(s)):
        raise ValueError("roc_auc: scores must be finite")
    n_pos = int(pos.sum())
    n_neg = s.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"roc_auc needs both classes: {n_pos} positive and {n_neg} negative scores")
    ranks = scipy.stats.rankdata(s, method="average")
    u = ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))
