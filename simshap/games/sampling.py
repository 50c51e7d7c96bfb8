"""Subset samplers: Shapley-kernel, uniform and random permutations.

Every sampler is vectorised (no Python loop over rows), runs on any device and is seeded
through a ``torch.Generator``. Random numbers are drawn on the generator's device and then moved
to ``device``, so the same CPU generator gives the same masks whatever the target device.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "ShapleyKernelSampler",
    "UniformSampler",
    "random_permutations",
    "shapley_kernel_gamma",
    "shapley_kernel_size_probs",
    "shapley_kernel_subset_prob",
    "shapley_weight",
    "random_subsets_of_size",
    "sample_by_size",
    "sample_marginal_coalitions",
]


def _check_num_players(d: int, minimum: int = 1) -> None:
    if not isinstance(d, int) or d < minimum:
        raise ValueError(f"number of players must be an integer >= {minimum}, got {d!r}")


def _check_count(n: int, name: str = "n") -> None:
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")


def _source_device(generator: torch.Generator | None, device: torch.device | str | None):
    """Device on which random numbers are drawn (the generator's, if any)."""
    if generator is not None:
        return generator.device
    return torch.device(device) if device is not None else torch.device("cpu")


def shapley_kernel_gamma(d: int) -> float:
    """Normaliser gamma = sum_{s=1}^{d-1} 1/(s(d-s)) = (2/d) H_{d-1} of the Shapley kernel."""
    _check_num_players(d, 2)
    return sum(1.0 / (s * (d - s)) for s in range(1, d))


def shapley_kernel_size_probs(d: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Probabilities of subset sizes s = 1..d-1 under the Shapley kernel, P(s) ∝ 1/(s(d-s)).

    Returns:
        Tensor of shape (d - 1,): entry ``s - 1`` is P(|S| = s).
    """
    _check_num_players(d, 2)
    s = torch.arange(1, d, dtype=torch.float64)
    w = 1.0 / (s * (d - s))
    return (w / w.sum()).to(dtype)


def shapley_kernel_subset_prob(d: int, s: int | torch.Tensor) -> float | torch.Tensor:
    """Probability p(S) = 1 / (gamma C(d, s) s (d - s)) of one subset of size ``s`` (0 < s < d)."""
    gamma = shapley_kernel_gamma(d)
    if isinstance(s, torch.Tensor):
        s64 = s.to(torch.float64)
        logc = math.lgamma(d + 1) - torch.lgamma(s64 + 1) - torch.lgamma(d - s64 + 1)
        p = 1.0 / (gamma * torch.exp(logc) * s64 * (d - s64))
        return torch.where((s64 > 0) & (s64 < d), p, torch.zeros_like(p))
    if not 0 < s < d:
        return 0.0
    return 1.0 / (gamma * math.comb(d, s) * s * (d - s))


def shapley_weight(d: int, s: int | torch.Tensor) -> float | torch.Tensor:
    """Shapley weight w(s) = s! (d - s - 1)! / d! of a coalition S ⊆ N∖{i} of size s.

    ``sum_{S ⊆ N∖{i}} w(|S|) = 1``: drawing the size uniformly on 0..d-1 and then a uniform
    subset of N∖{i} of that size samples exactly these weights.
    """
    if isinstance(s, torch.Tensor):
        s64 = s.to(torch.float64)
        logw = torch.lgamma(s64 + 1) + torch.lgamma(d - s64) - math.lgamma(d + 1)
        return torch.exp(logw)
    return math.factorial(s) * math.factorial(d - s - 1) / math.factorial(d)


def random_subsets_of_size(
    sizes: torch.Tensor, d: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Uniform random subsets of ``{0..d-1}`` with the given sizes, one per entry of ``sizes``.

    Args:
        sizes: integer tensor of any shape (on the generator's device).
        d: number of players.
        generator: optional ``torch.Generator``.

    Returns:
        bool tensor of shape ``(*sizes.shape, d)``.
    """
    u = torch.rand((*sizes.shape, d), generator=generator, device=sizes.device)
    # rank of each player in a uniformly random order; the first `size` players form the subset
    ranks = u.argsort(dim=-1).argsort(dim=-1)
    return ranks < sizes.unsqueeze(-1)


def _pair_up(first: torch.Tensor, n: int) -> torch.Tensor:
    """Interleave ``first`` (..., k, d) with complements: row 2j+1 = ~row 2j; keep n rows."""
    both = torch.stack([first, ~first], dim=-2)  # (..., k, 2, d)
    both = both.reshape(*first.shape[:-2], 2 * first.shape[-2], first.shape[-1])
    return both[..., :n, :]


class ShapleyKernelSampler:
    """Draws coalitions from the Shapley kernel distribution over non-empty proper subsets.

    The size ``s`` is drawn with P(s) ∝ 1/(s(d-s)), then a uniform subset of that size, so
    ``p(S) = 1 / (gamma C(d, s) s (d - s))`` (DESIGN.md). With ``paired=True``, row ``2k+1`` is the
    complement of row ``2k``; an odd count ends with one unpaired draw.

    Args:
        d: number of players (>= 2).
        paired: draw complementary pairs (antithetic sampling).
    """

    def __init__(self, d: int, paired: bool = True) -> None:
        _check_num_players(d, 2)
        self.d = d
        self.paired = paired
        self._size_probs = shapley_kernel_size_probs(d, torch.float32)

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        batch_shape: tuple[int, ...] = (),
    ) -> torch.Tensor:
        """Draw ``n`` coalitions (per batch entry).

        Args:
            n: number of coalitions.
            generator: optional ``torch.Generator`` (seeds everything).
            device: device of the returned masks (default: the generator's, else CPU).
            batch_shape: leading batch shape; pairing is along the ``n`` axis of each entry.

        Returns:
            bool tensor of shape ``(*batch_shape, n, d)``.
        """
        return sample_by_size(
            self._size_probs, n, self.d, self.paired, generator, device, batch_shape
        )


def sample_by_size(
    size_probs: torch.Tensor,
    n: int,
    d: int,
    paired: bool = True,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    batch_shape: tuple[int, ...] = (),
) -> torch.Tensor:
    """Coalitions whose size ``s`` (1..d-1) is drawn from ``size_probs[s - 1]``, then uniform.

    Args:
        size_probs: ``(d - 1,)`` probabilities of sizes 1..d-1 (need not be normalised). For
            ``paired=True`` it should be symmetric (``P(s) = P(d - s)``) so that complements
            follow the same distribution.
        n: coalitions per batch entry.
        d: number of players.
        paired: row ``2k+1`` is the complement of row ``2k``.
        generator: optional ``torch.Generator``.
        device: device of the result.
        batch_shape: leading batch shape.

    Returns:
        bool tensor ``(*batch_shape, n, d)``.
    """
    _check_count(n)
    src = _source_device(generator, device)
    k = math.ceil(n / 2) if paired else n
    count = math.prod(batch_shape) * k
    probs = size_probs.to(device=src, dtype=torch.float32)
    sizes = torch.multinomial(probs, count, replacement=True, generator=generator) + 1
    masks = random_subsets_of_size(sizes.view(*batch_shape, k), d, generator)
    if paired:
        masks = _pair_up(masks, n)
    return masks.to(device if device is not None else src)


def sample_marginal_coalitions(
    n: int,
    d: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    batch_shape: tuple[int, ...] = (),
) -> torch.Tensor:
    """For every player i, ``n`` coalitions S ⊆ N∖{i} drawn with the Shapley weights w(|S|).

    The size is uniform on 0..d-1 and the subset uniform among those of N∖{i} with that size,
    which gives P(S) = w(|S|) = |S|! (d - |S| - 1)! / d! (see :func:`shapley_weight`).

    Returns:
        bool tensor ``(*batch_shape, n, d, d)``: entry ``[..., k, i, :]`` is the k-th coalition
        drawn for player ``i`` (never containing ``i``).
    """
    _check_count(n)
    _check_num_players(d, 1)
    src = _source_device(generator, device)
    sizes = torch.randint(0, d, (*batch_shape, n, d), generator=generator, device=src)
    u = torch.rand((*batch_shape, n, d, d), generator=generator, device=src)
    # player i always ranks last among the players drawn for i, so it is never in S
    u = u + 2.0 * torch.eye(d, device=src)
    ranks = u.argsort(dim=-1).argsort(dim=-1)
    masks = ranks < sizes.unsqueeze(-1)
    return masks.to(device if device is not None else src)


class UniformSampler:
    """Size uniform on 0..d, then a uniform subset of that size (surrogate training masks).

    Args:
        d: number of players.
    """

    def __init__(self, d: int) -> None:
        _check_num_players(d, 1)
        self.d = d

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        batch_shape: tuple[int, ...] = (),
    ) -> torch.Tensor:
        """Draw ``n`` coalitions; returns bool ``(*batch_shape, n, d)``."""
        _check_count(n)
        src = _source_device(generator, device)
        sizes = torch.randint(0, self.d + 1, (*batch_shape, n), generator=generator, device=src)
        masks = random_subsets_of_size(sizes, self.d, generator)
        return masks.to(device if device is not None else src)


def random_permutations(
    n: int,
    d: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    batch_shape: tuple[int, ...] = (),
    antithetic: bool = False,
) -> torch.Tensor:
    """Batched uniform random permutations of ``0..d-1``.

    Args:
        n: permutations per batch entry.
        d: number of players.
        generator: optional ``torch.Generator``.
        device: device of the result.
        batch_shape: leading batch shape.
        antithetic: row ``2k+1`` is the reverse of row ``2k`` (odd ``n``: last row unpaired).

    Returns:
        long tensor ``(*batch_shape, n, d)``; each row is an ordering of the players.
    """
    _check_count(n)
    _check_num_players(d, 1)
    src = _source_device(generator, device)
    k = math.ceil(n / 2) if antithetic else n
    perms = torch.rand((*batch_shape, k, d), generator=generator, device=src).argsort(dim=-1)
    if antithetic:
        perms = torch.stack([perms, perms.flip(-1)], dim=-2).reshape(*batch_shape, 2 * k, d)
        perms = perms[..., :n, :]
    return perms.to(device if device is not None else src)
