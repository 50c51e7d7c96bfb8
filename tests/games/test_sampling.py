import math

import pytest
import torch

from simshap.games.sampling import (
    ShapleyKernelSampler,
    UniformSampler,
    random_permutations,
    sample_marginal_coalitions,
    shapley_kernel_gamma,
    shapley_kernel_size_probs,
    shapley_kernel_subset_prob,
    shapley_weight,
)
from simshap.games.values import all_coalitions, coalition_index


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("d", [2, 3, 7, 20])
def test_gamma_closed_form(d):
    harmonic = sum(1.0 / k for k in range(1, d))
    assert shapley_kernel_gamma(d) == pytest.approx(2.0 / d * harmonic, rel=1e-12)


@pytest.mark.parametrize("d", [3, 5, 8])
def test_subset_probabilities_sum_to_one_and_are_symmetric(d):
    masks = all_coalitions(d)
    s = masks.sum(-1)
    p = shapley_kernel_subset_prob(d, s)
    assert p[0] == 0 and p[-1] == 0
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-12)
    # p(S) = p(N \ S): complement of index k is (2^d - 1) - k
    assert torch.allclose(p, p.flip(0))
    assert shapley_kernel_subset_prob(d, 1) == pytest.approx(float(p[1]))


def test_shapley_weights_sum_to_one():
    d = 6
    total = sum(math.comb(d - 1, s) * shapley_weight(d, s) for s in range(d))
    assert total == pytest.approx(1.0, abs=1e-12)
    assert float(shapley_weight(d, torch.tensor(2))) == pytest.approx(shapley_weight(d, 2))


def test_kernel_sampler_matches_distribution():
    d, n = 5, 200_000
    masks = ShapleyKernelSampler(d, paired=False).sample(n, generator=gen(1))
    assert masks.dtype == torch.bool and masks.shape == (n, d)
    s = masks.sum(-1)
    assert (s > 0).all() and (s < d).all()
    freq = torch.bincount(coalition_index(masks), minlength=2**d).double() / n
    p = shapley_kernel_subset_prob(d, all_coalitions(d).sum(-1))
    # every subset within 5 binomial standard errors of its probability
    se = (p * (1 - p) / n).sqrt()
    assert ((freq - p).abs() <= 5 * se + 1e-12).all()


@pytest.mark.parametrize("n", [1, 2, 7, 10])
def test_paired_rows_are_complements(n):
    masks = ShapleyKernelSampler(6, paired=True).sample(n, generator=gen(2), batch_shape=(3,))
    assert masks.shape == (3, n, 6)
    for k in range(0, n - 1, 2):
        assert torch.equal(masks[:, k + 1], ~masks[:, k])
    s = masks.sum(-1)
    assert ((s > 0) & (s < 6)).all()


def test_sampler_seeded_and_size_probs():
    a = ShapleyKernelSampler(9).sample(64, generator=gen(3))
    b = ShapleyKernelSampler(9).sample(64, generator=gen(3))
    c = ShapleyKernelSampler(9).sample(64, generator=gen(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    probs = shapley_kernel_size_probs(9)
    assert probs.shape == (8,) and torch.allclose(probs, probs.flip(0))


def test_uniform_sampler_sizes_uniform_including_empty_and_full():
    d, n = 4, 50_000
    masks = UniformSampler(d).sample(n, generator=gen(5))
    counts = torch.bincount(masks.sum(-1), minlength=d + 1).double() / n
    assert torch.allclose(counts, torch.full((d + 1,), 1 / (d + 1), dtype=torch.float64), atol=0.01)


def test_permutations_are_permutations_and_antithetic():
    perms = random_permutations(5, 7, generator=gen(6), batch_shape=(2,), antithetic=True)
    assert perms.shape == (2, 5, 7)
    assert torch.equal(perms.sort(-1).values, torch.arange(7).expand(2, 5, 7))
    assert torch.equal(perms[:, 1], perms[:, 0].flip(-1))
    assert torch.equal(perms[:, 3], perms[:, 2].flip(-1))


def test_marginal_coalitions_follow_shapley_weights():
    d, n = 4, 100_000
    masks = sample_marginal_coalitions(n, d, generator=gen(7))
    assert masks.shape == (n, d, d)
    assert not masks.diagonal(dim1=-2, dim2=-1).any()  # player i never in its own S
    i = 2
    idx = coalition_index(masks[:, i])
    freq = torch.bincount(idx, minlength=2**d).double() / n
    allc = all_coalitions(d)
    p = torch.where(allc[:, i], 0.0, shapley_weight(d, allc.sum(-1).clamp(max=d - 1)))
    assert ((freq - p).abs() < 0.006).all()


def test_sampler_rejects_bad_counts():
    with pytest.raises(ValueError, match="positive integer"):
        ShapleyKernelSampler(4).sample(0)
    with pytest.raises(ValueError, match=">= 2"):
        ShapleyKernelSampler(1)
