"""How far a model is from the oracle (the model that never saw the forget set), as the field measures it.

- TOFU's forget quality (Maini et al. 2024): the p-value of a two-sample Kolmogorov-Smirnov test between two models'
  per-sample losses on the forget set. High (>= 0.05): the test cannot tell them apart. With a handful of samples the
  test is weak, so a high p-value is weak evidence: the number of samples is reported with it.
- MUSE's PrivLeak (Shi et al. 2024): (AUC_unlearned - AUC_oracle) / AUC_oracle of the membership-inference AUC. 0 =
  as private as the oracle; positive = members still stand out (under-unlearned); negative = over-unlearned.
"""
from __future__ import annotations

from scipy.stats import ks_2samp

GOOD_P, BAD_P = 0.05, 0.01  # forget quality at or above GOOD_P: indistinguishable from the oracle; below BAD_P: far
LEAK_NEAR, LEAK_FAR = 0.1, 0.3  # |PrivLeak| within LEAK_NEAR: as private as the oracle; beyond LEAK_FAR: far from it


def forget_quality(unlearned: list[float], oracle: list[float]) -> dict:
    """TOFU's forget quality: the KS test's p-value between two samples of per-sample losses (and its statistic)."""
    test = ks_2samp(unlearned, oracle)
    return {"p": float(test.pvalue), "statistic": float(test.statistic), "samples": [len(unlearned), len(oracle)]}


def privleak(auc: float, oracle_auc: float) -> float:
    """MUSE's PrivLeak: the MIA AUC's gap to the oracle's, relative to the oracle's."""
    return (auc - oracle_auc) / oracle_auc
