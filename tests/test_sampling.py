"""Sampling stages as data: what temperature, top-k and top-p do to the next-token distribution, that generation
draws from exactly the last stage, and that the draw itself is a fair one."""

import numpy as np
import pytest
import torch

from cutellm.errors import GenerationError
from cutellm.sampling import (STAGE_NAMES, SamplingSettings, final_distribution, pick_token, sample_index,
                              sampling_steps)

SETTINGS = [(1.0, None, None), (0.7, 5, None), (1.3, None, 0.8), (0.9, 7, 0.6), (2.0, 3, 0.99), (0.0, None, None),
            (0.0, 4, 0.5)]


def _logits(n: int = 50, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, generator=torch.Generator().manual_seed(seed)) * 2


@pytest.mark.parametrize("temperature, top_k, top_p", SETTINGS)
def test_every_stage_sums_to_one_over_its_kept_tokens_and_removed_ones_are_zero(temperature, top_k, top_p):
    logits = _logits()
    logits[[0, 1]] = float("-inf")  # banned tokens
    steps = sampling_steps(logits, SamplingSettings(temperature, top_k, top_p))
    assert [s.name for s in steps.stages] == list(STAGE_NAMES)
    before = np.isfinite(logits.numpy())
    for stage in steps.stages:
        assert stage.probs[stage.kept].sum() == pytest.approx(1.0, abs=1e-5)
        assert np.all(stage.probs[~stage.kept] == 0)
        assert not stage.kept[[0, 1]].any()
        assert not (stage.kept & ~before).any(), "a stage may only remove tokens, never bring one back"
        assert set(stage.removed) == set(np.flatnonzero(before & ~stage.kept).tolist())
        before = stage.kept
    assert np.array_equal(steps.stage("model").probs, torch.softmax(logits, -1).numpy())


@pytest.mark.parametrize("temperature, top_k, top_p", SETTINGS)
def test_generation_draws_from_exactly_the_last_stage(temperature, top_k, top_p):
    logits = _logits(seed=3)
    settings = SamplingSettings(temperature, top_k, top_p)
    steps = sampling_steps(logits, settings)
    assert steps.settings is settings
    assert torch.equal(final_distribution(logits, settings), torch.from_numpy(steps.final.probs))
    for seed in range(5):
        assert steps.draw(torch.Generator().manual_seed(seed)) == \
            pick_token(logits, settings, torch.Generator().manual_seed(seed))


def test_top_k_keeps_exactly_k_tokens_the_k_most_likely():
    logits = _logits()
    for k in (1, 5, 20, 49):
        kept = sampling_steps(logits, SamplingSettings(1.0, top_k=k)).stage("top-k").kept
        assert kept.sum() == k
        assert set(np.flatnonzero(kept)) == set(torch.topk(logits, k).indices.tolist())


def test_top_k_breaks_ties_at_the_cut_by_the_lower_token_id():
    # Six tokens tie for places 2..7: a threshold would keep all seven; top-k keeps exactly k, lower ids first.
    logits = torch.tensor([0.0, 1.0, 1.0, 1.0, 5.0, 1.0, 1.0, 1.0, -2.0])
    kept = sampling_steps(logits, SamplingSettings(1.0, top_k=3)).stage("top-k").kept
    assert np.flatnonzero(kept).tolist() == [1, 2, 4]
    assert final_distribution(logits, SamplingSettings(1.0, top_k=3)).nonzero().flatten().tolist() == [1, 2, 4]


def test_top_k_keeps_fewer_only_when_fewer_tokens_may_be_generated():
    logits = torch.tensor([float("-inf"), 2.0, 1.0, float("-inf")])
    assert sampling_steps(logits, SamplingSettings(1.0, top_k=3)).stage("top-k").kept.tolist() == [False, True, True, False]


def test_top_p_keeps_the_smallest_set_whose_mass_reaches_p():
    logits = torch.log(torch.tensor([0.05, 0.5, 0.1, 0.3, 0.05]))
    for p, expected in [(0.75, {1, 3}), (0.79, {1, 3}), (0.81, {1, 3, 2}), (0.5, {1}), (0.01, {1}),
                        (0.95, {1, 3, 2, 0})]:
        stage = sampling_steps(logits, SamplingSettings(1.0, top_p=p)).stage("top-p")
        assert set(np.flatnonzero(stage.kept)) == expected, p
        kept_mass = sum(float(torch.softmax(logits, -1)[i]) for i in expected)
        assert kept_mass >= p - 1e-6
        smallest = sorted(expected, key=lambda i: -float(logits[i]))[:-1]  # one token fewer falls short
        assert sum(float(torch.softmax(logits, -1)[i]) for i in smallest) < p
    # Renormalised: the two kept tokens share all of the mass in their old ratio.
    probs = sampling_steps(logits, SamplingSettings(1.0, top_p=0.75)).final.probs
    assert probs[1] == pytest.approx(0.5 / 0.8) and probs[3] == pytest.approx(0.3 / 0.8)


def test_top_p_reads_the_distribution_after_top_k():
    logits = torch.log(torch.tensor([0.4, 0.3, 0.2, 0.1]))
    # After top-2 the masses are 4/7 and 3/7: p = 0.5 now needs only the best token.
    steps = sampling_steps(logits, SamplingSettings(1.0, top_k=2, top_p=0.5))
    assert steps.stage("top-k").removed == (2, 3) and steps.stage("top-p").removed == (1,)


def test_temperature_reshapes_without_removing_and_tends_to_one_hot():
    logits = _logits()
    best = int(torch.argmax(logits))
    sharp = sampling_steps(logits, SamplingSettings(0.5)).stage("temperature")
    flat = sampling_steps(logits, SamplingSettings(2.0)).stage("temperature")
    model = sampling_steps(logits, SamplingSettings(1.0)).stage("model")
    assert sharp.removed == flat.removed == ()
    assert sharp.probs[best] > model.probs[best] > flat.probs[best]
    peaks = [sampling_steps(logits, SamplingSettings(t)).final.probs[best] for t in (1.0, 0.3, 0.1, 0.01)]
    assert peaks == sorted(peaks) and peaks[-1] > 0.999
    greedy = sampling_steps(logits, SamplingSettings(0.0))
    assert np.flatnonzero(greedy.final.kept).tolist() == [best] and greedy.final.probs[best] == 1.0
    assert greedy.draw(None) == best and len(greedy.stage("temperature").removed) == 49


def test_ranking_is_the_models_order_best_first():
    logits = _logits()
    steps = sampling_steps(logits, SamplingSettings(1.0))
    assert steps.ranking[:5].tolist() == torch.topk(logits, 5).indices.tolist()


def test_bad_rows_and_settings_are_refused():
    with pytest.raises(GenerationError, match="one row"):
        sampling_steps(torch.zeros(2, 5), SamplingSettings(1.0))
    with pytest.raises(GenerationError, match="top-k"):
        sampling_steps(torch.zeros(5), SamplingSettings(1.0, top_k=6))
    with pytest.raises(GenerationError, match="banned"):
        sampling_steps(torch.full((4,), float("-inf")), SamplingSettings(1.0))


def test_sampling_steps_takes_one_settings_object():
    # The old call passed the numbers one by one; it now fails with the new call in the message.
    with pytest.raises(TypeError, match=r"SamplingSettings\(temperature=0.8"):
        sampling_steps(_logits(), 0.8)
    with pytest.raises(GenerationError, match="seed"):
        sampling_steps(_logits(), SamplingSettings(1.0, seed=1.5))


def test_old_imports_from_inference_are_the_same_objects():
    from cutellm import inference, sampling
    for name in ("SamplingSettings", "SamplingStage", "SamplingSteps", "STAGE_NAMES", "sampling_steps",
                 "final_distribution", "pick_token", "sample_index"):
        assert getattr(inference, name) is getattr(sampling, name), name


# --------------------------------------------------------------------------------------------------------------
# The draw

def test_top_k_only_emits_allowed_tokens():
    torch.manual_seed(0)
    logits = torch.randn(40)
    allowed = set(torch.topk(logits, 3).indices.tolist())
    gen = torch.Generator().manual_seed(0)
    picks = {pick_token(logits, SamplingSettings(2.0, top_k=3), gen) for _ in range(300)}
    assert picks <= allowed and len(picks) == 3


def test_top_p_only_emits_the_nucleus():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.1, 0.05, 0.05]))
    gen = torch.Generator().manual_seed(0)
    picks = {pick_token(logits, SamplingSettings(1.0, top_p=0.75), gen) for _ in range(300)}
    assert picks == {0, 1}  # 0.5 + 0.3 reaches 0.75; the rest is cut
    picks = {pick_token(logits, SamplingSettings(1.0, top_p=0.01), gen) for _ in range(50)}
    assert picks == {0}  # always at least the best token


def test_greedy_picks_the_argmax_and_needs_no_random_numbers():
    logits = _logits(seed=5)
    assert SamplingSettings().generator() is None
    assert pick_token(logits, SamplingSettings(0.0, top_k=3, top_p=0.5), None) == int(torch.argmax(logits))


def test_the_seed_in_the_settings_fixes_the_draws():
    logits = _logits(seed=6)
    settings = SamplingSettings(1.5, seed=42)
    draws = [[pick_token(logits, settings, g) for _ in range(30)] for g in (settings.generator(), settings.generator())]
    assert draws[0] == draws[1]
    other = SamplingSettings(1.5, seed=43).generator()
    assert draws[0] != [pick_token(logits, settings, other) for _ in range(30)]


def test_sample_index_draws_exactly_what_torch_multinomial_draws():
    # generation's sampler skips torch.multinomial's input checks but must give the same tokens for the same seed
    for seed in range(40):
        logits = torch.randn(68, generator=torch.Generator().manual_seed(seed)) * (1 + seed % 4)
        logits[:3] = float("-inf")  # banned special tokens
        probs = torch.softmax(logits, dim=-1)
        ours, theirs = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        for _ in range(25):
            assert sample_index(probs, ours) == int(torch.multinomial(probs, 1, generator=theirs))


def test_sample_index_follows_the_distribution_like_torch_multinomial():
    # Statistically, not draw by draw: should torch change how multinomial uses its random numbers, the exponential
    # race must still draw each token with its probability (and never a token of probability 0).
    probs = torch.tensor([0.5, 0.25, 0.15, 0.07, 0.03, 0.0])
    n = 20_000
    gen = torch.Generator().manual_seed(0)
    ours = torch.bincount(torch.tensor([sample_index(probs, gen) for _ in range(n)]), minlength=6) / n
    theirs = torch.bincount(torch.multinomial(probs, n, replacement=True, generator=torch.Generator().manual_seed(1)),
                            minlength=6) / n
    sigma = (probs * (1 - probs) / n).sqrt()
    assert ours[5] == 0 and theirs[5] == 0
    assert torch.all((ours - probs).abs() <= 4.5 * sigma + 1e-9)
    assert torch.all((ours - theirs).abs() <= 4.5 * 2 ** 0.5 * sigma + 1e-9)
