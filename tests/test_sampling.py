"""Sampling stages as data: what temperature, top-k and top-p do to the next-token distribution, and that generation
draws from exactly the last stage."""

import numpy as np
import pytest
import torch

from cutellm import sample_generate
from cutellm.errors import GenerationError, PromptError
from cutellm.inference import (STAGE_NAMES, SamplingSettings, final_distribution, generate_ids, next_token_logits,
                               pick_token, repeating_tail, sampling_steps, stream_from_ids, stream_generate,
                               tokens_beyond_context)

SETTINGS = [(1.0, None, None), (0.7, 5, None), (1.3, None, 0.8), (0.9, 7, 0.6), (2.0, 3, 0.99), (0.0, None, None),
            (0.0, 4, 0.5)]


def _logits(n: int = 50, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, generator=torch.Generator().manual_seed(seed)) * 2


@pytest.mark.parametrize("temperature, top_k, top_p", SETTINGS)
def test_every_stage_sums_to_one_over_its_kept_tokens_and_removed_ones_are_zero(temperature, top_k, top_p):
    logits = _logits()
    logits[[0, 1]] = float("-inf")  # banned tokens
    steps = sampling_steps(logits, temperature, top_k, top_p)
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
    steps = sampling_steps(logits, temperature, top_k, top_p)
    settings = SamplingSettings(temperature, top_k, top_p)
    assert torch.equal(final_distribution(logits, settings), torch.from_numpy(steps.final.probs))
    for seed in range(5):
        assert steps.draw(torch.Generator().manual_seed(seed)) == \
            pick_token(logits, settings, torch.Generator().manual_seed(seed))


def test_top_k_keeps_exactly_k_tokens_the_k_most_likely():
    logits = _logits()
    for k in (1, 5, 20, 49):
        kept = sampling_steps(logits, 1.0, top_k=k).stage("top-k").kept
        assert kept.sum() == k
        assert set(np.flatnonzero(kept)) == set(torch.topk(logits, k).indices.tolist())


def test_top_k_breaks_ties_at_the_cut_by_the_lower_token_id():
    # Six tokens tie for places 2..7: a threshold would keep all seven; top-k keeps exactly k, lower ids first.
    logits = torch.tensor([0.0, 1.0, 1.0, 1.0, 5.0, 1.0, 1.0, 1.0, -2.0])
    kept = sampling_steps(logits, 1.0, top_k=3).stage("top-k").kept
    assert np.flatnonzero(kept).tolist() == [1, 2, 4]
    assert final_distribution(logits, SamplingSettings(1.0, top_k=3)).nonzero().flatten().tolist() == [1, 2, 4]


def test_top_k_keeps_fewer_only_when_fewer_tokens_may_be_generated():
    logits = torch.tensor([float("-inf"), 2.0, 1.0, float("-inf")])
    assert sampling_steps(logits, 1.0, top_k=3).stage("top-k").kept.tolist() == [False, True, True, False]


def test_top_p_keeps_the_smallest_set_whose_mass_reaches_p():
    logits = torch.log(torch.tensor([0.05, 0.5, 0.1, 0.3, 0.05]))
    for p, expected in [(0.75, {1, 3}), (0.79, {1, 3}), (0.81, {1, 3, 2}), (0.5, {1}), (0.01, {1}),
                        (0.95, {1, 3, 2, 0})]:
        stage = sampling_steps(logits, 1.0, top_p=p).stage("top-p")
        assert set(np.flatnonzero(stage.kept)) == expected, p
        kept_mass = sum(float(torch.softmax(logits, -1)[i]) for i in expected)
        assert kept_mass >= p - 1e-6
        smallest = sorted(expected, key=lambda i: -float(logits[i]))[:-1]  # one token fewer falls short
        assert sum(float(torch.softmax(logits, -1)[i]) for i in smallest) < p
    # Renormalised: the two kept tokens share all of the mass in their old ratio.
    probs = sampling_steps(logits, 1.0, top_p=0.75).final.probs
    assert probs[1] == pytest.approx(0.5 / 0.8) and probs[3] == pytest.approx(0.3 / 0.8)


def test_top_p_reads_the_distribution_after_top_k():
    logits = torch.log(torch.tensor([0.4, 0.3, 0.2, 0.1]))
    # After top-2 the masses are 4/7 and 3/7: p = 0.5 now needs only the best token.
    steps = sampling_steps(logits, 1.0, top_k=2, top_p=0.5)
    assert steps.stage("top-k").removed == (2, 3) and steps.stage("top-p").removed == (1,)


def test_temperature_reshapes_without_removing_and_tends_to_one_hot():
    logits = _logits()
    best = int(torch.argmax(logits))
    sharp = sampling_steps(logits, 0.5).stage("temperature")
    flat = sampling_steps(logits, 2.0).stage("temperature")
    model = sampling_steps(logits, 1.0).stage("model")
    assert sharp.removed == flat.removed == ()
    assert sharp.probs[best] > model.probs[best] > flat.probs[best]
    peaks = [sampling_steps(logits, t).final.probs[best] for t in (1.0, 0.3, 0.1, 0.01)]
    assert peaks == sorted(peaks) and peaks[-1] > 0.999
    greedy = sampling_steps(logits, 0.0)
    assert np.flatnonzero(greedy.final.kept).tolist() == [best] and greedy.final.probs[best] == 1.0
    assert greedy.draw(None) == best and len(greedy.stage("temperature").removed) == 49


def test_ranking_is_the_models_order_best_first():
    logits = _logits()
    steps = sampling_steps(logits, 1.0)
    assert steps.ranking[:5].tolist() == torch.topk(logits, 5).indices.tolist()


def test_bad_rows_and_settings_are_refused():
    with pytest.raises(GenerationError, match="one row"):
        sampling_steps(torch.zeros(2, 5))
    with pytest.raises(GenerationError, match="top-k"):
        sampling_steps(torch.zeros(5), 1.0, top_k=6)
    with pytest.raises(GenerationError, match="banned"):
        sampling_steps(torch.full((4,), float("-inf")))


def test_seeded_sample_generate_is_reproducible_and_emits_only_kept_tokens(tiny):
    model, tok, _, _ = tiny
    kw = dict(temperature=1.4, top_k=4, top_p=0.9, seed=11)
    assert sample_generate(model, tok, "the dog", 25, **kw) == sample_generate(model, tok, "the dog", 25, **kw)
    ids = tok.encode("the dog")
    for t in stream_generate(model, tok, "the dog", 25, **kw):
        kept = sampling_steps(next_token_logits(model, tok, ids), 1.4, 4, 0.9).final.kept
        assert kept[t.token_id], f"{t.text!r} was not among the kept tokens"
        ids.append(t.token_id)


def test_next_token_logits_are_what_generation_reads(tiny):
    model, tok, _, _ = tiny
    ids = tok.encode("the cat sat on the")
    logits = next_token_logits(model, tok, ids)
    assert torch.isinf(logits[sorted(tok.special_ids)]).all()
    assert int(torch.argmax(logits)) == generate_ids(model, ids, 1)[0] == tok.token_to_id["mat"]


def test_generation_continues_from_any_token_sequence(tiny):
    model, tok, _, _ = tiny
    # A branch: the learner took "dog" where the model wanted "mat"; generation carries on from there.
    ids = tok.encode("the cat sat on the") + [tok.token_to_id["dog"]]
    tokens = [t.token_id for t in stream_from_ids(model, tok, ids, 5)]
    assert tokens == generate_ids(model, ids, 5, banned=sorted(tok.special_ids))
    with pytest.raises(PromptError):
        list(stream_from_ids(model, tok, [], 3))
    with pytest.raises(PromptError):
        list(stream_from_ids(model, tok, [tok.vocab_size], 3))


def test_tokens_beyond_context():
    assert tokens_beyond_context(list(range(10)), 16) == 0
    assert tokens_beyond_context(list(range(16)), 16) == 0
    assert tokens_beyond_context(list(range(57)), 20) == 37


@pytest.mark.parametrize("ids, unit, repeats", [
    ([5, 9, 9, 9], [9], 3), ([1, 2, 7, 7, 7, 7, 7], [7], 5), ([4, 1, 2, 1, 2, 1, 2], [1, 2], 3),
    ([3, 1, 2, 3, 4, 1, 2, 3, 4], [1, 2, 3, 4], 2)])
def test_repeating_tail_finds_the_unit(ids, unit, repeats):
    found = repeating_tail(ids)
    assert found is not None and (list(found.tokens), found.repeats) == (unit, repeats)


@pytest.mark.parametrize("ids", [[], [1], [9, 9], [1, 2, 1, 2], [1, 2, 3, 4, 5, 6], [7, 7, 7, 1]])
def test_repeating_tail_ignores_ordinary_text(ids):
    assert repeating_tail(ids) is None
