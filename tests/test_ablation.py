"""Switching parts off (cutellm.views.ablation): the right part goes, nothing else changes, nothing leaks."""

from __future__ import annotations

import copy
import threading
from dataclasses import fields, replace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import SMALL_MODEL, TINY_TEXT, seeded_model

from cutellm import ConfigError, ModelConfig, PromptError, SimpleWordTokenizer
from cutellm.inference import encode_context, generate_ids
from cutellm.sampling import SamplingSettings
from cutellm.views import ablation
from cutellm.views.ablation import Part, switched_off
from cutellm.views.ablation_charts import ablation_figure, head_importance_figure

TEXT = "the cat sat on the mat and the dog ran to the park"


@pytest.fixture(scope="module")
def small():
    """An untrained 3-layer, 4-head model (block 12) and a word tokenizer that fits its vocabulary."""
    return seeded_model(), SimpleWordTokenizer.from_text(TINY_TEXT, vocab_size=SMALL_MODEL.vocab_size)


@pytest.fixture()
def trained(tiny):
    model, tokenizer, _, _ = tiny
    return model, tokenizer


def ids_of(model, tokenizer, text=TEXT) -> torch.Tensor:
    return torch.tensor([encode_context(model, tokenizer, text)])


def logits(model, idx, parts_per_row=None) -> torch.Tensor:
    with torch.no_grad():
        if parts_per_row is None:
            return model(idx)[0]
        with switched_off(model, parts_per_row):
            return model(idx)[0]


def hooks(model) -> dict[str, tuple]:
    return {name: (tuple(m._forward_hooks), tuple(m._forward_pre_hooks)) for name, m in model.named_modules()}


def zero_head_weights(model, layer: int, head: int):
    """A copy of `model` whose output projection ignores `head` of `layer` (its columns are 0)."""
    other = copy.deepcopy(model)
    hd = model.config.head_dim
    with torch.no_grad():
        other.blocks[layer].attn.proj.weight[:, head * hd:(head + 1) * hd] = 0
    return other


def manual_logits(model, idx, skip_attention=(), skip_mlp=()) -> torch.Tensor:
    """The forward pass written out, leaving out whole attentions / MLPs: an independent reference."""
    with torch.no_grad():
        x = model._embed(idx, 0)
        for i, block in enumerate(model.blocks):
            if i not in skip_attention:
                x = x + block.attn(block.ln1(x))
            if i not in skip_mlp:
                x = x + block.mlp(block.ln2(x))
        return model.lm_head(model.ln_f(x))


# --- what switching off does ---------------------------------------------------------------------------------


def test_a_head_whose_output_weights_are_zero_changes_nothing(small):
    model, tok = small
    idx = ids_of(model, tok)
    silent = zero_head_weights(model, 1, 2)
    intact = logits(silent, idx)
    torch.testing.assert_close(logits(silent, idx, [Part("head", 1, 2)]), intact, rtol=0, atol=1e-6)


def test_switching_off_a_used_head_changes_the_output_as_zero_weights_would(small):
    model, tok = small
    idx = ids_of(model, tok)
    after = logits(model, idx, [Part("head", 1, 2)])
    assert (after - logits(model, idx)).abs().max() > 1e-4
    torch.testing.assert_close(after, logits(zero_head_weights(model, 1, 2), idx), rtol=0, atol=1e-5)


def test_a_whole_attention_off_is_every_head_off_and_no_attention_at_all(small):
    model, tok = small
    idx = ids_of(model, tok)
    whole = logits(model, idx, [Part("attention", 0)])
    every_head = logits(model, idx, [[Part("head", 0, h) for h in range(4)]])
    torch.testing.assert_close(whole, every_head, rtol=0, atol=1e-6)
    torch.testing.assert_close(whole, manual_logits(model, idx, skip_attention={0}), rtol=0, atol=1e-5)


def test_an_mlp_off_is_a_block_without_its_mlp(small):
    model, tok = small
    idx = ids_of(model, tok)
    after = logits(model, idx, [Part("mlp", 2)])
    torch.testing.assert_close(after, manual_logits(model, idx, skip_mlp={2}), rtol=0, atol=1e-5)
    assert (after - logits(model, idx)).abs().max() > 1e-4
    both = logits(model, idx, [[Part("mlp", 0), Part("attention", 1)]])
    torch.testing.assert_close(both, manual_logits(model, idx, skip_attention={1}, skip_mlp={0}), rtol=0, atol=1e-5)


def test_each_batch_row_has_its_own_switches(small):
    model, tok = small
    idx = ids_of(model, tok)
    parts = [Part("head", 0, 1), Part("mlp", 1)]
    batch = logits(model, idx.repeat(3, 1), [(), parts[0], parts[1]])
    torch.testing.assert_close(batch[0], logits(model, idx)[0], rtol=0, atol=1e-5)
    for row, part in enumerate(parts, start=1):
        torch.testing.assert_close(batch[row], logits(model, idx, [part])[0], rtol=0, atol=1e-5)
    # One row of switches applies to every row of any batch.
    one_for_all = logits(model, idx.repeat(2, 1), [parts[0]])
    torch.testing.assert_close(one_for_all[1], logits(model, idx, [parts[0]])[0], rtol=0, atol=1e-5)


def test_the_attention_maps_see_the_switch_too(small):
    # model.trace writes attention out by hand and goes through the same output projection.
    model, tok = small
    idx = ids_of(model, tok)
    with switched_off(model, [Part("head", 1, 0)]):
        traced = model.trace(idx).logits
    torch.testing.assert_close(traced, logits(model, idx, [Part("head", 1, 0)]), rtol=0, atol=1e-5)


@pytest.mark.skipif("positions" not in {f.name for f in fields(ModelConfig)}, reason="no block designs here")
def test_switching_off_works_for_the_llama_block():
    model = seeded_model(replace(SMALL_MODEL, positions="rope", norm="rmsnorm", mlp="swiglu", tie_weights=False))
    idx = torch.arange(10)[None] % SMALL_MODEL.vocab_size
    silent = zero_head_weights(model, 0, 3)
    torch.testing.assert_close(logits(silent, idx, [Part("head", 0, 3)]), logits(silent, idx), rtol=0, atol=1e-6)
    torch.testing.assert_close(logits(model, idx, [Part("mlp", 1)]), manual_logits(model, idx, skip_mlp={1}),
                               rtol=0, atol=1e-5)


# --- one part, before and after ------------------------------------------------------------------------------


def test_ablation_effect_compares_loss_and_next_word(trained):
    model, tok = trained
    idx = ids_of(model, tok)
    effect = ablation.ablation_effect(model, tok, TEXT, Part("mlp", 0), position=3)
    with torch.no_grad():
        intact_loss = model(idx[:, :-1], idx[:, 1:])[1].item()
        off = logits(model, idx, [Part("mlp", 0)])
    off_loss = F.cross_entropy(off[0, :-1], idx[0, 1:]).item()
    assert effect.loss_before == pytest.approx(intact_loss, abs=1e-5)
    assert effect.loss_after == pytest.approx(off_loss, abs=1e-5)
    assert effect.loss_increase == pytest.approx(off_loss - intact_loss, abs=1e-5)
    assert effect.loss_increase > 0.5, "the first MLP matters to a trained model"
    assert effect.position == 3 and effect.input_token == "on" and effect.actual_next == "the"
    assert effect.probs_before.sum() == pytest.approx(1) and effect.probs_after.sum() == pytest.approx(1)
    np.testing.assert_allclose(effect.probs_after, torch.softmax(off[0, 3].double(), -1).numpy(), atol=1e-6)
    assert effect.predicted_before == tok.token(int(effect.probs_before.argmax())) == "the"
    table = effect.candidates
    assert list(table.columns) == ["candidate", "candidate_id", "prob_before", "prob_after", "change", "rank_before",
                                   "rank_after", "is_actual_next"]
    assert list(table["rank_before"][:5]) == [1, 2, 3, 4, 5]
    assert set(table["rank_after"]) >= {1, 2, 3, 4, 5}, "the top guesses without the part are there too"
    assert table.loc[table["candidate"] == "the", "is_actual_next"].item()
    np.testing.assert_allclose(table["change"], table["prob_after"] - table["prob_before"])


def test_ablation_effect_defaults_to_the_guess_after_the_text(trained):
    model, tok = trained
    effect = ablation.ablation_effect(model, tok, "the cat sat on the", Part("head", 1, 0))
    assert effect.position == 4 and effect.actual_next is None and effect.input_token == "the"
    assert effect.predicted_before == "mat"


# --- every part: the head importance table -------------------------------------------------------------------


def one_at_a_time(model, data: torch.Tensor, part: Part | None) -> float:
    """The mean loss over the windows `data`, with `part` off, one forward pass per window."""
    losses = []
    for window in data:
        idx = window[None]
        out = logits(model, idx[:, :-1], None if part is None else [part])
        losses.append(F.cross_entropy(out[0], idx[0, 1:]).item())
    return float(np.mean(losses))


def test_the_batched_head_table_equals_one_ablation_at_a_time(trained):
    model, tok = trained
    table = ablation.head_importance(model, tok, TEXT)
    cfg = model.config
    assert len(table) == cfg.n_layers * (cfg.n_heads + 2)
    assert list(table.columns) == ablation.IMPORTANCE_COLUMNS
    assert list(table["part"][:6]) == ["layer 1 head 1", "layer 1 head 2", "layer 1 head 3", "layer 1 head 4",
                                       "layer 1 attention", "layer 1 MLP"]
    assert table["head"].isna().sum() == 2 * cfg.n_layers
    data = ids_of(model, tok)
    assert table["loss_before"].iloc[0] == pytest.approx(one_at_a_time(model, data, None), abs=1e-5)
    for part, row in zip(ablation.all_parts(model), table.itertuples()):
        assert row.part == part.label
        assert row.loss_after == pytest.approx(one_at_a_time(model, data, part), abs=1e-5), part.label
    np.testing.assert_allclose(table["increase"], table["loss_after"] - table["loss_before"])
    assert table.attrs == {"measured_on": "text", "windows": 1, "tokens": data.size(1) - 1}
    matrix = ablation.head_matrix(table)
    assert matrix.shape == (cfg.n_layers, cfg.n_heads)
    assert matrix[1, 2] == table.loc[(table["layer"] == 2) & (table["head"] == 3), "increase"].item()


def test_the_head_table_on_validation_windows(tiny):
    model, tok, dataset, _ = tiny
    windows = ablation.sample_windows(dataset.val, 6)
    assert len(windows) == 6 and torch.equal(windows[0], dataset.val[0]) and torch.equal(windows[-1], dataset.val[-1])
    table = ablation.head_importance(model, tok, windows=windows)
    assert table.attrs == {"measured_on": "windows", "windows": 6, "tokens": 6 * model.config.block_size}
    assert table["loss_before"].iloc[0] == pytest.approx(one_at_a_time(model, windows, None), abs=1e-5)
    for part in (Part("head", 0, 1), Part("mlp", 1)):
        after = table.loc[table["part"] == part.label, "loss_after"].item()
        assert after == pytest.approx(one_at_a_time(model, windows, part), abs=1e-5)
    assert ablation.sample_windows(dataset.val[:3], 6).shape[0] == 3


def test_the_head_table_is_the_same_in_small_chunks(trained, monkeypatch):
    model, tok = trained
    whole = ablation.head_importance(model, tok, TEXT)
    monkeypatch.setattr(ablation, "MAX_LOGITS", 3 * 12 * model.config.vocab_size)   # three rows per pass
    pd.testing.assert_frame_equal(ablation.head_importance(model, tok, TEXT), whole, atol=1e-6)


def test_figures_draw_the_data(trained):
    model, tok = trained
    table = ablation.head_importance(model, tok, TEXT)
    heat = head_importance_figure(table)
    assert heat.data[0].z.shape == (2, 4) and heat.data[0].zmin == -heat.data[0].zmax
    effect = ablation.ablation_effect(model, tok, TEXT, Part("head", 0, 0))
    bars = ablation_figure(effect)
    assert [b.name for b in bars.data] == ["intact", "layer 1 head 1 off"]
    assert list(bars.data[0].x) == list(effect.candidates["prob_before"])


# --- nothing leaks -------------------------------------------------------------------------------------------


def snapshot(model, tok):
    idx = ids_of(model, tok)
    sampled = generate_ids(model, idx[0].tolist(), 12, sampling=SamplingSettings(0.9, seed=7))
    return hooks(model), logits(model, idx), sampled, model.training


def assert_intact(model, tok, before):
    after = snapshot(model, tok)
    assert after[0] == before[0], "every hook was removed"
    assert torch.equal(after[1], before[1]), "the forward pass is the intact model's"
    assert after[2] == before[2], "seeded generation writes the same words"
    assert after[3] == before[3], "train / eval mode is as it was"


def test_nothing_leaks_after_any_ablation(trained):
    model, tok = trained
    before = snapshot(model, tok)
    with switched_off(model, [[Part("attention", 0), Part("mlp", 1)]]):
        assert hooks(model) != before[0]
    assert_intact(model, tok, before)
    ablation.ablation_effect(model, tok, TEXT, Part("head", 1, 3))
    assert_intact(model, tok, before)
    ablation.head_importance(model, tok, TEXT)
    assert_intact(model, tok, before)


def test_nothing_leaks_when_an_exception_interrupts(trained, monkeypatch):
    model, tok = trained
    before = snapshot(model, tok)
    with pytest.raises(RuntimeError, match="boom"), switched_off(model, [Part("head", 0, 0)]):
        raise RuntimeError("boom")
    assert_intact(model, tok, before)
    # raised inside the forward pass
    with pytest.raises(ValueError, match="2 rows of switches for a batch of 3"), \
            switched_off(model, [(), Part("mlp", 0)]):
        logits(model, ids_of(model, tok).repeat(3, 1))
    assert_intact(model, tok, before)

    def fail(*args, **kwargs):
        raise RuntimeError("the head table failed halfway")

    was_training = model.training
    model.train()   # a model in training mode goes back to training mode
    try:
        before = snapshot(model, tok)
        monkeypatch.setattr(F, "cross_entropy", fail)
        with pytest.raises(RuntimeError, match="halfway"):
            ablation.head_importance(model, tok, TEXT)
        with pytest.raises(RuntimeError, match="halfway"):
            ablation.ablation_effect(model, tok, TEXT, Part("mlp", 1))
        monkeypatch.undo()
        assert_intact(model, tok, before)
    finally:
        model.train(was_training)


def test_another_thread_sees_the_intact_model_meanwhile(small):
    # The app shares a loaded model between sessions, each in its own thread.
    model, tok = small
    idx = ids_of(model, tok)
    intact, seen = logits(model, idx), {}
    with switched_off(model, [Part("attention", 1)]):
        worker = threading.Thread(target=lambda: seen.update(out=logits(model, idx)))
        worker.start()
        worker.join()
        here = logits(model, idx)
    assert torch.equal(seen["out"], intact)
    assert not torch.allclose(here, intact)


# --- clear messages ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("part, message", [
    (Part("head", 0, 4), "head 5 does not exist: layer 1 has heads 1-4"),
    (Part("head", 2, -1), "head 0 does not exist: layer 3 has heads 1-4"),
    (Part("attention", 3), "layer 4 does not exist: the model has layers 1-3"),
    (Part("mlp", -1), "layer 0 does not exist: the model has layers 1-3"),
])
def test_a_part_outside_the_model_names_the_valid_range(small, part, message):
    model, tok = small
    before = hooks(model)
    with pytest.raises(ConfigError, match=message), switched_off(model, [(), part]):
        pass
    with pytest.raises(ConfigError, match=message):
        ablation.ablation_effect(model, tok, TEXT, part)
    assert hooks(model) == before


@pytest.mark.parametrize("args, message", [
    (("neuron", 0), "must be one of head, attention, mlp"),
    (("head", 0), "switching off a head needs its number"),
    (("mlp", 0, 1), "switched off whole; leave the head out"),
    (("head", "1", 0), "layer: must be a whole number"),
])
def test_a_malformed_part_says_what_is_wrong(args, message):
    with pytest.raises(ConfigError, match=message):
        Part(*args)


def test_bad_texts_positions_and_windows_get_clear_messages(small):
    model, tok = small
    with pytest.raises(PromptError, match="positions 0-11"):
        ablation.ablation_effect(model, tok, TEXT, Part("mlp", 0), position=12)
    with pytest.raises(PromptError, match="needs at least two"):
        ablation.ablation_effect(model, tok, "cat", Part("mlp", 0))
    with pytest.raises(PromptError, match="empty"):
        ablation.head_importance(model, tok, "  ")
    with pytest.raises(ConfigError, match="exactly one"):
        ablation.head_importance(model, tok)
    with pytest.raises(ConfigError, match="longer than the model reads"):
        ablation.head_importance(model, tok, windows=torch.zeros(2, 14, dtype=torch.long))
    with pytest.raises(ConfigError, match="between 0 and 49"):
        ablation.head_importance(model, tok, windows=torch.full((1, 5), 50))
    with pytest.raises(ConfigError, match="expected a Part"), switched_off(model, [("head", 0, 1)]):
        pass
