"""0.2's ``torchsparsegradutils.utils.dist_stats_helpers``: the Hotelling and Nagao tests.

Examples
--------
>>> import torch
>>> from torchsparsegradutils.utils.dist_stats_helpers import cov_nagao_test
>>> accepted, statistic, threshold = cov_nagao_test(torch.eye(3), torch.eye(3), n=100)
>>> bool(accepted), float(statistic)
(True, 0.0)
"""

from tsgu.distributions.stats import cov_nagao_test, mean_hotelling_t2_test

__all__ = ["cov_nagao_test", "mean_hotelling_t2_test"]
