"""0.2's ``torchsparsegradutils.utils.dist_stats_helpers``: the Hotelling and Nagao tests."""

from tsgu.distributions.stats import cov_nagao_test, mean_hotelling_t2_test

__all__ = ["cov_nagao_test", "mean_hotelling_t2_test"]
