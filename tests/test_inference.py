import pytest
import torch

from cutellm import (generate, generate_ids, next_token_distribution, sample_generate,
                     stream_generate)
from cutellm.inference import SamplingSettings, pick_token


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
    kw = dict(temperature=temperature, top_k=top_k, top_p=top_p, seed=123)
    cached = generate_ids(model, ids, 60, use_cache=True, **kw)
    uncached = generate_ids(model, ids, 60, use_cache=False, **kw)
    assert cached == uncached


def test_seeded_sampling_is_reproducible_and_seeds_differ(tiny):
    model, tok, _, _ = tiny
    a = sample_generate(model, tok, "the", 30, temperature=1.5, seed=7)
    b = sample_generate(model, tok, "the", 30, temperature=1.5, seed=7)
    c = sample_generate(model, tok, "the", 30, temperature=1.5, seed=8)
    assert a == b
    assert a != c


def test_temperature_zero_is_greedy(tiny):
    model, tok, _, _ = tiny
    assert sample_generate(model, tok, "the bird", 8, temperature=0.0) == generate(model, tok, "the bird", 8)


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


def test_special_tokens_are_never_generated(tiny):
    model, tok, _, _ = tiny
    for t in stream_generate(model, tok, "the", 40, temperature=3.0, seed=1):
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
