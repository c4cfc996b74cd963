"""Shared fixtures: a small corpus, a tiny model trained on it once per session, the shipped model's path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cutellm import CuteLLM, ModelConfig, TrainConfig, prepare_training, train

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODEL = ROOT / "models" / "cute_llm.pth"
CORPUS = ROOT / "data" / "training_data.txt"

TINY_TEXT = " ".join(
    ["the cat sat on the mat.", "the dog ran to the park.", "the bird sang in the tree.",
     "a cow eats green grass.", "the sun is hot and the sky is blue."] * 40)

TINY_MODEL = ModelConfig(vocab_size=64, d_model=48, n_heads=4, n_layers=2, block_size=16, dropout=0.0)
# Its own recipe, not the defaults (tuned for the shipped model's 57k tokens): the tests' expectations of this
# model should not move when the default recipe does.
TINY_TRAIN = TrainConfig(max_steps=300, batch_size=16, learning_rate=1e-2, warmup_steps=20, eval_interval=100,
                         weight_decay=0.1, eval_batches=20, seed=0)

# An untrained model with three layers, for the tests of the model's maths and its speed paths.
SMALL_MODEL = ModelConfig(vocab_size=50, d_model=32, n_heads=4, n_layers=3, block_size=12, dropout=0.0)


def seeded_model(config: ModelConfig = SMALL_MODEL, seed: int = 0) -> CuteLLM:
    """A freshly initialised model in eval mode; the same seed gives the same weights."""
    torch.manual_seed(seed)
    return CuteLLM(config).eval()


@pytest.fixture(autouse=True)
def _fewer_threads():
    # Keep tests predictable on the 2-core CI machine.
    torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _no_run_left_behind(request):
    """Every test leaves the server's training slots as it found them: a run still training or queued afterwards
    would hold the next tests' runs in the queue. Such runs are stopped, and the test that left them fails."""
    yield
    from cutellm.lab.jobs import QUEUE

    left = QUEUE.jobs()
    for job in left:
        job.stop("the test ended")
    for job in left:
        job.join(60)
    assert not left, f"{request.node.name} left runs training or queued: {[j.name for j in left]}"


@pytest.fixture(scope="session", autouse=True)
def tiny():
    """(model, tokenizer, dataset, result) for a small model that has learned TINY_TEXT.

    Made before the first test runs (autouse): its initialisation draws from torch's global RNG, which a background
    training job left by an app test would draw from or reseed at the same time, giving the suite another model."""
    model, tokenizer, dataset = prepare_training(TINY_TEXT, TINY_MODEL, TINY_TRAIN)
    result = train(model, dataset, TINY_TRAIN)
    return model, tokenizer, dataset, result
