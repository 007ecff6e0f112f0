"""Low-rank factorization of Dense and 1×1 Conv2D layers by truncated SVD."""

from edgeopt.lowrank.svd import Factorization, factorize

__all__ = ["Factorization", "factorize"]
