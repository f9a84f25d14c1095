"""LSH banding: how many bands of how many rows a MinHash signature is cut into."""

from __future__ import annotations

__all__ = ["lsh_params"]


def lsh_params(threshold: float, num_perm: int, fn_weight: float = 0.8) -> tuple[int, int]:
    """Bands and rows minimising weighted false positives and negatives around ``threshold``.

    Candidates are confirmed on their signatures, so a false positive costs one
    comparison while a false negative is a missed duplicate: misses weigh more.

    >>> lsh_params(0.8, 64)
    (8, 8)
    """
    import numpy as np

    grid = np.linspace(0.0, 1.0, 201)
    best, best_err = (1, num_perm), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            p = 1.0 - (1.0 - grid**rows) ** bands
            fp = np.trapezoid(np.where(grid < threshold, p, 0.0), grid)
            fn = np.trapezoid(np.where(grid >= threshold, 1.0 - p, 0.0), grid)
            err = float((1 - fn_weight) * fp + fn_weight * fn)
            if err < best_err:
                best, best_err = (bands, rows), err
    return best
