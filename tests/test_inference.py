"""Generation: greedy and sampled continuations, the KV cache, the context window, branching, and the sampling
settings reaching every draw unchanged."""

import pytest
import torch

import cutellm.inference as inference
from cutellm import (generate, generate_ids, next_token_distribution, sample_generate,
                     stream_generate)
from cutellm.errors import PromptError
from cutellm.inference import next_token_logits, repeating_tail, stream_from_ids, tokens_beyond_context
from cutellm.sampling import SamplingSettings, sampling_steps


def test_greedy_generation_continues_the_learned_text(tiny):
    model, tok, _, _ = tiny
    assert generate(model, tok, "the cat sat on the", 3) == "the cat sat on the mat. the"
    assert generate(model, tok, "the cat sat on the", 3) == generate(model, tok, "the cat sat on the", 3)


@pytest.mark.parametrize("temperature, top_k, top_p", [(0.0, None, None), (1.0, None, None), (0.8, 5, 0.9),
                                                       (1.5, None, 0.5)])
def test_kv_cache_gives_identical_tokens(tiny, temperature, top_k, top_p):
    model, tok, _, _ = tiny
    ids = tok.encode("the dog ran")
    # 60 tokens is nearly four times the block size: the window overflows and is re-read several times
    sampling = SamplingSettings(temperature, top_k, top_p, seed=123)
    cached = generate_ids(model, ids, 60, sampling=sampling, use_cache=True)
    uncached = generate_ids(model, ids, 60, sampling=sampling, use_cache=False)
    assert cached == uncached


def test_seeded_sampling_is_reproducible_and_seeds_differ(tiny):
    model, tok, _, _ = tiny
    a = sample_generate(model, tok, "the", 30, sampling=SamplingSettings(1.5, seed=7))
    b = sample_generate(model, tok, "the", 30, sampling=SamplingSettings(1.5, seed=7))
    c = sample_generate(model, tok, "the", 30, sampling=SamplingSettings(1.5, seed=8))
    assert a == b
    assert a != c


def test_temperature_zero_is_greedy(tiny):
    model, tok, _, _ = tiny
    greedy = SamplingSettings(0.0)
    assert sample_generate(model, tok, "the bird", 8, sampling=greedy) == generate(model, tok, "the bird", 8)
    assert generate_ids(model, tok.encode("the bird"), 8) == \
        generate_ids(model, tok.encode("the bird"), 8, sampling=SamplingSettings())  # None is greedy too


def test_special_tokens_are_never_generated(tiny):
    model, tok, _, _ = tiny
    for t in stream_generate(model, tok, "the", 40, sampling=SamplingSettings(3.0, seed=1)):
        assert t.token_id not in tok.special_ids | {tok.unk_id}


def test_stream_reports_probabilities_and_alternatives(tiny):
    model, tok, _, _ = tiny
    steps = list(stream_generate(model, tok, "the cat sat on the", 4, alternatives=3))
    assert [s.text for s in steps] == ["mat", ".", "the", steps[3].text]
    first = steps[0]
    assert first.prob > 0.9 and first.alternatives[0] == ("mat", pytest.approx(first.prob))
    assert len(first.alternatives) == 3
    assert all(a[1] >= b[1] for a, b in zip(first.alternatives, first.alternatives[1:]))


def test_long_prompt_is_cropped_to_block_size(tiny):
    model, tok, _, _ = tiny
    long_prompt = "the bird sang in the tree. " * 50 + "the cat sat on the"
    ids = tok.encode(long_prompt)
    assert len(ids) > 300
    assert generate_ids(model, ids, 5) == generate_ids(model, ids[-model.config.block_size:], 5)
    assert generate(model, tok, long_prompt, 1).startswith(long_prompt.strip())


def test_next_token_distribution(tiny):
    model, tok, _, _ = tiny
    dist = next_token_distribution(model, tok, "the cat sat on the", top_k=5)
    assert dist[0][0] == "mat"
    assert len(dist) == 5 and sum(p for _, p in dist) <= 1.0 + 1e-6
    full = next_token_distribution(model, tok, "the cat", top_k=tok.vocab_size)
    assert sum(p for _, p in full) == pytest.approx(1.0, abs=1e-5)


def test_seeded_sample_generate_is_reproducible_and_emits_only_kept_tokens(tiny):
    model, tok, _, _ = tiny
    sampling = SamplingSettings(temperature=1.4, top_k=4, top_p=0.9, seed=11)
    assert sample_generate(model, tok, "the dog", 25, sampling=sampling) == \
        sample_generate(model, tok, "the dog", 25, sampling=sampling)
    ids = tok.encode("the dog")
    for t in stream_generate(model, tok, "the dog", 25, sampling=sampling):
        kept = sampling_steps(next_token_logits(model, tok, ids), sampling).final.kept
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


def test_the_settings_object_reaches_every_draw_unchanged(tiny, monkeypatch):
    model, tok, _, _ = tiny
    seen = []

    def spy(logits, settings, generator):
        seen.append(settings)
        return real(logits, settings, generator)

    real = inference.pick_token
    monkeypatch.setattr(inference, "pick_token", spy)
    sampling = SamplingSettings(0.9, top_k=5, top_p=0.8, seed=3)
    list(stream_generate(model, tok, "the cat", 6, sampling=sampling))
    generate_ids(model, tok.encode("the cat"), 4, sampling=sampling)
    sample_generate(model, tok, "the cat", 3, sampling=sampling)
    assert len(seen) == 13 and all(s is sampling for s in seen)


def test_old_sampling_keywords_say_how_to_call_now(tiny):
    model, tok, _, _ = tiny
    with pytest.raises(TypeError, match=r"sampling=SamplingSettings\(temperature=0.8, top_k=20, seed=1\)"):
        sample_generate(model, tok, "the cat", 5, temperature=0.8, top_k=20, seed=1)
    with pytest.raises(TypeError, match="generate_ids"):
        generate_ids(model, [1, 2], 3, top_p=0.9)
    with pytest.raises(TypeError, match="sampling must be a SamplingSettings"):
        list(stream_generate(model, tok, "the cat", 2, sampling=0.8))


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
