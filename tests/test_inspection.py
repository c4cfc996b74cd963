"""The numbers behind the Explore pictures (cutellm.views.inspection), on small untrained models: fast and exact."""

import numpy as np
import pytest
import torch

from cutellm import ConfigError, CuteLLM, ModelConfig, PromptError, SimpleWordTokenizer
from cutellm.views import inspection as insp

from conftest import TINY_TEXT

TEXT = "the cat sat on the mat and the dog ran to the park"


def make(n_layers: int = 2, causal: bool = True, block_size: int = 16, seed: int = 0):
    tok = SimpleWordTokenizer.from_text(TINY_TEXT, vocab_size=64)
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=tok.vocab_size, d_model=32, n_heads=4, n_layers=n_layers, block_size=block_size,
                      dropout=0.1, causal=causal)
    return CuteLLM(cfg).eval(), tok


@pytest.fixture(scope="module")
def mt():
    return make()


# --- architecture -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_layers", [1, 2, 4])
def test_architecture_counts_every_parameter_once(n_layers):
    model, _ = make(n_layers)
    arch = insp.architecture_summary(model)
    assert sum(c.params for c in arch.components) == model.num_parameters() == arch.total_params
    kinds = [c.kind for c in arch.components]
    assert kinds == ["embedding", "embedding", *["attention", "mlp"] * n_layers, "layernorm", "head"]
    head = arch.components[-1]
    assert head.params == 0 and "tied" in head.name.lower() and head.output_shape == f"(T, {model.config.vocab_size})"
    attn = arch.components[2]
    assert attn.heads == 4 and attn.input_shape == attn.output_shape == "(T, 32)" and attn.layer == 1
    assert list(arch.to_frame()["params"]) == [c.params for c in arch.components]


def test_more_layers_more_components():
    small, big = (insp.architecture_summary(make(n)[0]) for n in (2, 4))
    assert len(big.components) == len(small.components) + 4
    assert big.total_params > small.total_params


# --- next-token predictions ---------------------------------------------------------------------------------


def test_probabilities_sum_to_one_and_match_the_model(mt):
    model, tok = mt
    pred = insp.next_token_probs(model, tok, TEXT)
    assert pred.probs.shape == (len(tok.encode(TEXT)), tok.vocab_size)
    np.testing.assert_allclose(pred.probs.sum(axis=1), 1.0, atol=1e-9)
    assert pred.actual_next == (*pred.tokens[1:], None)
    assert not model.training  # eval mode kept


def test_inspection_restores_training_mode_and_uses_eval(mt):
    model, tok = mt
    model.train()
    try:
        a = insp.next_token_probs(model, tok, TEXT).probs
        b = insp.next_token_probs(model, tok, TEXT).probs
        assert model.training  # restored
        np.testing.assert_array_equal(a, b)  # dropout was off: deterministic
    finally:
        model.eval()


def test_next_token_table_columns_ranks_and_actual_next(mt):
    model, tok = mt
    df = insp.next_token_table(model, tok, TEXT, top_k=3, include_actual=False)
    n = len(tok.encode(TEXT))
    assert list(df.columns) == ["position", "input_token", "candidate", "candidate_id", "prob", "rank",
                                "is_actual_next", "actual_next"]
    assert len(df) == 3 * n
    for t, rows in df.groupby("position"):
        assert list(rows["rank"]) == [1, 2, 3]
        assert list(rows["prob"]) == sorted(rows["prob"], reverse=True)
    # is_actual_next marks exactly the candidate equal to the following input token
    ids = tok.encode(TEXT)
    for row in df.itertuples():
        nxt = ids[row.position + 1] if row.position + 1 < n else None
        assert row.is_actual_next == (row.candidate_id == nxt)
    assert df[df.position == n - 1]["actual_next"].isna().all()


def test_next_token_table_adds_the_actual_token_with_its_true_rank(mt):
    model, tok = mt
    df = insp.next_token_table(model, tok, TEXT, top_k=1)
    pred = insp.next_token_probs(model, tok, TEXT)
    n = len(pred.ids)
    # Every position but the last shows its actual next token exactly once, with the true rank.
    assert df.groupby("position")["is_actual_next"].sum().tolist() == [1] * (n - 1) + [0]
    for row in df[df.is_actual_next].itertuples():
        p = pred.probs[row.position]
        assert row.rank == 1 + int((p > p[row.candidate_id]).sum())


def test_long_text_is_cropped_to_the_block_and_empty_text_refused(mt):
    model, tok = mt
    long = " ".join([TEXT] * 5)
    pred = insp.next_token_probs(model, tok, long)
    assert len(pred.ids) == model.config.block_size
    assert list(pred.ids) == tok.encode(long)[-model.config.block_size:]
    for bad in ("", "   "):
        with pytest.raises(PromptError):
            insp.next_token_probs(model, tok, bad)
    with pytest.raises(ConfigError):
        insp.next_token_table(model, tok, TEXT, top_k=0)


def test_prediction_heatmap_columns_are_the_union_of_top_tokens(mt):
    model, tok = mt
    hm = insp.prediction_heatmap(model, tok, TEXT, top_k=2, max_columns=100)
    pred = insp.next_token_probs(model, tok, TEXT)
    union = {int(i) for i in np.argsort(-pred.probs, axis=1, kind="stable")[:, :2].ravel()}
    assert set(hm.candidate_ids) == union
    assert hm.probs.shape == (len(pred.ids), len(union))
    np.testing.assert_allclose(hm.probs, pred.probs[:, list(hm.candidate_ids)])
    assert hm.candidates == tuple(tok.token(i) for i in hm.candidate_ids)
    narrow = insp.prediction_heatmap(model, tok, TEXT, top_k=5, max_columns=4)
    assert len(narrow.candidates) == 4 and narrow.probs.shape[1] == 4


# --- embeddings ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3])
def test_embedding_pca_has_one_row_per_token(mt, n):
    model, tok = mt
    df = insp.embedding_pca(model, tok, n_components=n)
    axes = list("xyz"[:n])
    assert len(df) == tok.vocab_size and sorted(df["id"]) == list(range(tok.vocab_size))
    assert df[axes].notna().all().all()
    assert ("z" in df.columns) == (n == 3)
    assert df[df.is_special]["token"].tolist() == ["<pad>", "<unk>", "<mask>"]
    assert df.loc[df.token == "the", "frequency"].item() == tok.counts["the"]
    assert len(df.attrs["explained_variance_ratio"]) == n
    assert all(len(nb) == insp.N_NEIGHBOURS for nb in df["neighbours"])


def test_embedding_pca_is_deterministic_and_stable_across_subsets(mt):
    model, tok = mt
    full = insp.embedding_pca(model, tok).set_index("token")
    again = insp.embedding_pca(model, tok).set_index("token")
    top = insp.embedding_pca(model, tok, top_n=10, include_special=False).set_index("token")
    assert full[["x", "y"]].equals(again[["x", "y"]])
    assert len(top) == 10 and not top["is_special"].any()
    np.testing.assert_allclose(top[["x", "y"]], full.loc[top.index, ["x", "y"]])
    ordinary = sorted((-tok.counts.get(t, 0), i) for i, t in enumerate(tok.id_to_token) if i >= 3)
    assert set(top["id"]) == {i for _, i in ordinary[:10]}


def test_embedding_highlight_marks_the_word_and_its_neighbours(mt):
    model, tok = mt
    df = insp.embedding_pca(model, tok, top_n=3, highlight="Cat")
    nn = insp.nearest_neighbours(model, tok, "cat", k=insp.N_NEIGHBOURS)
    assert df[df.is_highlight]["token"].tolist() == ["cat"]
    assert set(df[df.is_neighbour]["token"]) == set(nn["token"])  # shown even outside the top 3
    assert df.loc[df.token == "cat", "neighbours"].item() == tuple(nn["token"])
    with pytest.raises(PromptError, match="not in the model's vocabulary"):
        insp.embedding_pca(model, tok, highlight="zebra")


def test_nearest_neighbours_are_sorted_exclude_the_word_and_match_cosine(mt):
    model, tok = mt
    nn = insp.nearest_neighbours(model, tok, "dog", k=5)
    assert len(nn) == 5 and "dog" not in set(nn["token"])
    assert not set(nn["token"]) & {"<pad>", "<unk>", "<mask>"}
    assert list(nn["similarity"]) == sorted(nn["similarity"], reverse=True)
    emb = model.tok_emb.weight.detach().double()
    unit = emb / emb.norm(dim=1, keepdim=True)
    sims = (unit @ unit[tok.token_to_id["dog"]]).numpy()
    sims[[0, 1, 2, tok.token_to_id["dog"]]] = -np.inf
    assert list(nn["id"]) == list(np.argsort(-sims, kind="stable")[:5])
    np.testing.assert_allclose(nn["similarity"], np.sort(sims)[::-1][:5])
    for bad in ("", "zebra", "the cat"):
        with pytest.raises(PromptError):
            insp.nearest_neighbours(model, tok, bad)


# --- attention and logit lens -------------------------------------------------------------------------------


def test_attention_rows_sum_to_one_and_never_look_ahead(mt):
    model, tok = mt
    att = insp.attention_maps(model, tok, TEXT)
    n = len(tok.encode(TEXT))
    assert att.weights.shape == (2, 4, n, n) and att.tokens == tuple(tok.token(i) for i in tok.encode(TEXT))
    np.testing.assert_allclose(att.weights.sum(axis=-1), 1.0, atol=1e-5)
    upper = np.triu_indices(n, k=1)
    assert (att.weights[:, :, upper[0], upper[1]] == 0).all()
    assert att.causal and att.n_layers == 2 and att.n_heads == 4


def test_attention_of_a_non_causal_model_sees_the_future():
    model, tok = make(causal=False)
    att = insp.attention_maps(model, tok, TEXT)
    assert not att.causal and (att.weights[0, 0][np.triu_indices(len(att.tokens), k=1)] > 0).all()


def test_logit_lens_has_a_row_per_layer_and_its_last_row_is_the_model(mt):
    model, tok = mt
    lens = insp.logit_lens(model, tok, TEXT)
    n = len(tok.encode(TEXT))
    assert lens.top_probs.shape == lens.top_tokens.shape == (model.config.n_layers + 1, n)
    assert lens.layer_labels == ("embedding", "block 1", "block 2")
    pred = insp.next_token_probs(model, tok, TEXT)
    assert list(lens.top_tokens[-1]) == [tok.token(int(i)) for i in pred.probs.argmax(axis=1)]
    np.testing.assert_allclose(lens.top_probs[-1], pred.probs.max(axis=1), atol=1e-6)
    assert ((lens.top_probs > 0) & (lens.top_probs <= 1)).all()
    frame = lens.to_frame()
    assert len(frame) == (model.config.n_layers + 1) * n and set(frame["layer"]) == {0, 1, 2}


def test_trained_model_predicts_the_text(tiny):
    model, tok, _, _ = tiny
    df = insp.next_token_table(model, tok, "the cat sat on the mat", top_k=3)
    best = df[df["rank"] == 1].set_index("position")["candidate"]
    assert best[1] == "sat" and best[4] == "mat"
    assert df[(df.position == 4) & (df["rank"] == 1)]["is_actual_next"].item()
