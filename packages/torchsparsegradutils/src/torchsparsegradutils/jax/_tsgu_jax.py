"""Import tsgu.jax, or say which extra brings it."""

try:
    import tsgu.jax as tsgu_jax
except ImportError as error:  # jax or tsgu-jax missing
    raise ImportError(
        "torchsparsegradutils.jax needs tsgu-jax and jax: "
        "pip install 'torchsparsegradutils[jax]' (or tsgu-jax for the CPU)"
    ) from error

__all__ = ["tsgu_jax"]
