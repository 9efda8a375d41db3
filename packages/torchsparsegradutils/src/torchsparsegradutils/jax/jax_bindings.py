"""0.2's ``torchsparsegradutils.jax.jax_bindings``."""

from ._tsgu_jax import tsgu_jax

j2t = tsgu_jax.j2t
t2j = tsgu_jax.t2j
j2t_coo = tsgu_jax.j2t_coo
t2j_coo = tsgu_jax.t2j_coo
j2t_csr = tsgu_jax.j2t_csr
t2j_csr = tsgu_jax.t2j_csr
spmm_t4j = tsgu_jax.spmm_t4j

__all__ = ["j2t", "j2t_coo", "j2t_csr", "spmm_t4j", "t2j", "t2j_coo", "t2j_csr"]
