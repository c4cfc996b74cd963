"""The numbers behind the Explore pictures: what the model is made of, what it predicts, how it sees words.

Every function takes a model and its tokenizer (and a text or a few options) and returns plain data: numpy arrays,
pandas DataFrames or small frozen dataclasses, so tests can check the numbers and `charts.py` only draws them.

- `token_pieces` / `bpe_merges` / `tokenizer_comparison`: how a text is cut into tokens, the first merges a BPE
  tokenizer learned, and how word, char and BPE tokenizers cut the same text.
- `architecture_summary`: the model's components in order, with tensor shapes and parameter counts.
- `next_token_probs` / `next_token_table`: at each position of a text, the probability of every possible next token.
- `prediction_heatmap`: positions x the most likely candidate tokens, as a probability matrix.
- `embedding_pca` / `nearest_neighbours`: the token embedding table squeezed to 2-3 dimensions, and which words the
  model thinks are alike (cosine similarity in the full embedding space).
- `attention_maps`: for each layer and head, how much each position reads from each earlier position.
- `logit_lens`: what the model would predict if it stopped after each block.

A text is encoded like a prompt (`inference.encode_context`: empty text or text with no known word raises
PromptError) and cropped to its last `block_size` tokens, the most the model reads. The model runs in eval mode
(no dropout) without gradients; its previous mode is restored afterwards. Nothing here is random: the same model and
text always give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from ..errors import ConfigError, PromptError
from ..inference import encode_context
from ..model import CuteLLM, ModelTrace, evaluating
from ..tokenizer import BPETokenizer, Tokenizer

# The example sentence shown by the Explore page, the CLI and `make visualize` (one place for all of them).
DEFAULT_TEXT = "the cat sat on the mat and the dog ran to the park"
# The word the embedding map highlights by default (skipped when a model's vocabulary lacks it).
DEFAULT_HIGHLIGHT = "cat"
N_NEIGHBOURS = 5


# ---------------------------------------------------------------------------------------------------------------
# Running the model


def _labels(tokenizer: Tokenizer, ids: list[int] | tuple[int, ...]) -> tuple[str, ...]:
    # The tokens as the model sees them: an unknown word shows as <unk>, which is honest about what it read.
    return tuple(tokenizer.token(i) for i in ids)


def _trace(model: CuteLLM, ids: list[int]) -> ModelTrace:
    with evaluating(model):
        return model.trace(torch.tensor([ids], dtype=torch.long, device=model.device))


def _softmax(logits: torch.Tensor) -> np.ndarray:
    # float64 so that each row sums to 1 to ~1e-12, whatever dtype the model runs in.
    return torch.softmax(logits.detach().double().cpu(), dim=-1).numpy()


def _check_int(name: str, value: int, low: int, high: int | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{name}: must be a whole number {bounds}, got {value!r}")


# ---------------------------------------------------------------------------------------------------------------
# Tokens


def token_pieces(tokenizer: Tokenizer, text: str) -> pd.DataFrame:
    """How `text` is cut into tokens, one row per token: position, id, token (its readable form), unknown (the piece
    is outside the vocabulary and read as <unk>; never for BPE), and piece (what the tokenizer cut out of the text:
    for a word model the lower-cased word, also when it is unknown)."""
    ids = tokenizer.encode(text)
    pieces = tokenizer.tokenize(text)
    rows = [{"position": t, "id": i, "token": tokenizer.token(i), "unknown": i == tokenizer.unk_id,
             "piece": piece} for t, (i, piece) in enumerate(zip(ids, pieces))]
    return pd.DataFrame(rows, columns=["position", "id", "token", "unknown", "piece"])


def bpe_merges(tokenizer: Tokenizer, n: int = 50) -> pd.DataFrame:
    """The first `n` merges a BPE tokenizer learned, in order: rank (1 = first), left + right -> token, and count (how
    often the pair occurred in the corpus when it was merged). Empty for other tokenizers."""
    _check_int("n", n, 1)
    merges = getattr(tokenizer, "merges", [])[:n]
    return pd.DataFrame([{"rank": r, "left": tokenizer.token(m.left), "right": tokenizer.token(m.right),
                          "token": tokenizer.token(m.token), "count": m.count} for r, m in enumerate(merges, 1)],
                        columns=["rank", "left", "right", "token", "count"])


def tokenizer_comparison(text: str, corpus: str, vocab_size: int = 1000) -> pd.DataFrame:
    """Word, char and BPE tokenizers built from `corpus` (`vocab_size` for word and BPE), each cutting `text`: one row
    per tokenizer with its vocabulary, the text's tokens, <unk> rate and characters per token."""
    from ..tokenizer import TOKENIZER_KINDS, build_tokenizer

    rows = []
    for kind in TOKENIZER_KINDS:
        tok = build_tokenizer(kind, corpus, max(vocab_size, BPETokenizer.MIN_VOCAB) if kind == "bpe" else vocab_size)
        n = len(tok.encode(text))
        rows.append({"tokenizer": kind, "vocabulary": tok.vocab_size, "tokens": n, "unk_rate": tok.unk_rate(text),
                     "chars_per_token": len(text) / n if n else 0.0})
    return pd.DataFrame(rows, columns=["tokenizer", "vocabulary", "tokens", "unk_rate", "chars_per_token"])


# ---------------------------------------------------------------------------------------------------------------
# Architecture


@dataclass(frozen=True)
class Component:
    """One box of the architecture diagram.

    Shapes are per sequence (the batch dimension is left out): T is the number of tokens read, at most block_size.
    `params` counts each weight once: the LM head shares the token embedding's matrix, so it adds 0.
    """

    name: str            # "Token embedding", "Block 1 · attention", ...
    kind: str            # embedding | attention | mlp | layernorm | head | other
    layer: int | None    # 1-based block number, None outside the blocks
    input_shape: str     # e.g. "(T, 128)"
    output_shape: str
    params: int
    details: str         # one or two sentences for the hover label
    heads: int = 0       # attention heads (attention components only)


@dataclass(frozen=True)
class Architecture:
    """The model's components in the order data flows through them."""

    components: tuple[Component, ...]
    total_params: int    # == model.num_parameters()
    block_size: int
    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    design: str = "GPT-2 block"   # ModelConfig.block_design
    tied_head: bool = True        # the LM head shares the token embedding's matrix

    def to_frame(self) -> pd.DataFrame:
        """One row per component: name, kind, layer, input_shape, output_shape, params, heads, details."""
        return pd.DataFrame([{"name": c.name, "kind": c.kind, "layer": c.layer, "input_shape": c.input_shape,
                              "output_shape": c.output_shape, "params": c.params, "heads": c.heads,
                              "details": c.details} for c in self.components])


def _count(modules: list[nn.Module], seen: set[int]) -> int:
    """Parameters of `modules` not counted yet (by identity): a tied matrix counts once, where it first appears."""
    total = 0
    for module in modules:
        for p in module.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel()
    return total


def architecture_summary(model: CuteLLM) -> Architecture:
    """The model's components (embeddings, each block's attention and MLP, final norm, LM head) from its config.

    Parameter counts are read from the actual modules, so they sum to `model.num_parameters()`; more layers give more
    components. Each block's norms are counted with the attention / MLP they feed (pre-norm design). The block's
    design (GPT-2's or Llama's parts, ModelConfig.block_design) shows in the names and the explanations.
    """
    cfg = model.config
    d, h, hd, v, w = cfg.d_model, cfg.n_heads, cfg.head_dim, cfg.vocab_size, cfg.mlp_width
    vec = f"(T, {d})"
    norm = {"layernorm": "LayerNorm", "rmsnorm": "RMSNorm"}[cfg.norm]
    seen: set[int] = set()
    parts = [
        Component("Token embedding", "embedding", None, "(T,)", vec, _count([model.tok_emb], seen),
                  f"A table of {v:,} vectors of {d} numbers, one per vocabulary token: each token id is replaced "
                  f"by its row."),
    ]
    if model.pos_emb is not None:
        parts.append(Component("Position embedding", "embedding", None, "(T,)", vec, _count([model.pos_emb], seen),
                               f"One learned vector per position (0 to {cfg.block_size - 1}), added to the token "
                               f"vectors so the model knows word order."))
    seeing = "itself and earlier positions only (causal mask)" if cfg.causal else "every position (no causal mask)"
    order = {"learned": "",
             "rope": " Word order enters here: RoPE rotates each query and key by its position, so a score depends "
                     "on how far apart two tokens are.",
             "none": " There are no positions anywhere: only the causal mask tells the model about order."}
    mlp = (f"{d}→{w} (GELU)→{d}" if cfg.mlp == "gelu" else
           f"{d}→2 × {w}, one half through SiLU gating the other (SwiGLU)→{d}")
    for i, block in enumerate(model.blocks, start=1):
        parts.append(Component(
            f"Block {i} · attention", "attention", i, vec, vec, _count([block.ln1, block.attn], seen),
            f"{norm}, then {h} heads of {hd} dimensions each: every position looks at {seeing} and gathers "
            f"their information, weighted by relevance. Query/key/value projection {d}→{3 * d}, output {d}→{d}; "
            f"the result is added to the residual stream.{order[cfg.positions]}", heads=h))
        parts.append(Component(
            f"Block {i} · MLP", "mlp", i, vec, vec, _count([block.ln2, block.mlp], seen),
            f"{norm}, then a small network applied to each position on its own: {mlp}; the result is added to "
            f"the residual stream."))
    parts.append(Component(f"Final {norm}", "layernorm", None, vec, vec, _count([model.ln_f], seen),
                           "Rescales each position's vector before it is turned into scores for every token."))
    if cfg.tie_weights:
        parts.append(Component("LM head (tied)", "head", None, vec, f"(T, {v})", _count([model.lm_head], seen),
                               f"Scores for all {v:,} tokens at every position (softmax turns them into next-token "
                               f"probabilities). It reuses the token embedding matrix, so it adds no parameters."))
    else:
        parts.append(Component("LM head", "head", None, vec, f"(T, {v})", _count([model.lm_head], seen),
                               f"Scores for all {v:,} tokens at every position (softmax turns them into next-token "
                               f"probabilities), from a {d} × {v:,} matrix of its own (not tied to the embedding)."))
    total = model.num_parameters()
    counted = sum(c.params for c in parts)
    if counted != total:
        # A module this summary does not know about (a future change to model.py): show it rather than lie.
        parts.append(Component("Other parameters", "other", None, "", "", total - counted,
                               "Parameters of modules this summary does not describe."))
    return Architecture(tuple(parts), total, cfg.block_size, v, d, cfg.n_layers, h, design=cfg.block_design,
                        tied_head=cfg.tie_weights)


# ---------------------------------------------------------------------------------------------------------------
# Next-token predictions


@dataclass(frozen=True, eq=False)
class Predictions:
    """The model's next-token distribution at every position of a text.

    probs[t] is the probability of every vocabulary token being token t + 1, having read tokens 0..t; each row sums
    to 1. `actual_next[t]` is the token that really follows position t in the text (None after the last one).
    """

    ids: tuple[int, ...]
    tokens: tuple[str, ...]
    probs: np.ndarray                       # (T, vocab_size), float64
    actual_next: tuple[str | None, ...]


def next_token_probs(model: CuteLLM, tokenizer: Tokenizer, text: str = DEFAULT_TEXT) -> Predictions:
    """Run the model once over `text` and return the full next-token distribution at each position."""
    ids = encode_context(model, tokenizer, text)
    with evaluating(model):
        logits, _ = model(torch.tensor([ids], dtype=torch.long, device=model.device))
    tokens = _labels(tokenizer, ids)
    return Predictions(tuple(ids), tokens, _softmax(logits[0]), (*tokens[1:], None))


def _ranks(probs: np.ndarray) -> np.ndarray:
    """ranks[t, i] = 1 + how many tokens beat token i at position t (stable: ties go to the lower id)."""
    order = np.argsort(-probs, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, probs.shape[1] + 1)[None, :].repeat(probs.shape[0], 0), axis=1)
    return ranks


def next_token_table(model: CuteLLM, tokenizer: Tokenizer, text: str = DEFAULT_TEXT, top_k: int = 5,
                     include_actual: bool = True) -> pd.DataFrame:
    """The top-k next-token candidates at each position, one row per (position, candidate), best first.

    Columns: position (0-based), input_token (the token read at that position), candidate, candidate_id, prob (the
    model's probability that `candidate` comes next), rank (1 = most likely), is_actual_next (the candidate is the
    token that really follows in the text), actual_next (that token; None at the last position).
    With `include_actual`, a position whose actual next token is not in its top-k gets one more row for it, with its
    true rank (> top_k), so a chart can show how far off the model was.
    """
    _check_int("top_k", top_k, 1, tokenizer.vocab_size)
    pred = next_token_probs(model, tokenizer, text)
    ranks = _ranks(pred.probs)
    order = np.argsort(-pred.probs, axis=1, kind="stable")[:, :top_k]
    rows = []
    for t, token in enumerate(pred.tokens):
        actual_id = pred.ids[t + 1] if t + 1 < len(pred.ids) else None
        chosen = [int(i) for i in order[t]]
        if include_actual and actual_id is not None and actual_id not in chosen:
            chosen.append(actual_id)
        for cid in chosen:
            rows.append({"position": t, "input_token": token, "candidate": tokenizer.token(cid), "candidate_id": cid,
                         "prob": float(pred.probs[t, cid]), "rank": int(ranks[t, cid]),
                         "is_actual_next": cid == actual_id, "actual_next": pred.actual_next[t]})
    return pd.DataFrame(rows, columns=["position", "input_token", "candidate", "candidate_id", "prob", "rank",
                                       "is_actual_next", "actual_next"])


@dataclass(frozen=True, eq=False)
class PredictionHeatmap:
    """probs[t, c] = the probability that candidate c comes right after position t (rows: positions of the text)."""

    tokens: tuple[str, ...]                 # input token at each position (the rows)
    candidates: tuple[str, ...]             # the columns
    candidate_ids: tuple[int, ...]
    probs: np.ndarray                       # (T, len(candidates)), float64
    actual_next: tuple[str | None, ...]


def prediction_heatmap(model: CuteLLM, tokenizer: Tokenizer, text: str = DEFAULT_TEXT, top_k: int = 3,
                       max_columns: int = 20) -> PredictionHeatmap:
    """Positions x candidate tokens: the union of every position's top-k tokens, at most `max_columns` of them.

    When the union is too wide, the candidates with the highest peak probability are kept. Columns are ordered by
    the position where each candidate peaks, so the picture reads top-left to bottom-right like the text.
    """
    _check_int("top_k", top_k, 1, tokenizer.vocab_size)
    _check_int("max_columns", max_columns, 1)
    pred = next_token_probs(model, tokenizer, text)
    top = np.argsort(-pred.probs, axis=1, kind="stable")[:, :top_k]
    union = sorted({int(i) for i in top.ravel()})
    peak = pred.probs[:, union].max(axis=0)
    # Keep the strongest candidates (ties: lower id), then sort them by where they peak.
    kept = [union[j] for j in sorted(range(len(union)), key=lambda j: (-peak[j], union[j]))[:max_columns]]
    kept.sort(key=lambda i: (int(pred.probs[:, i].argmax()), -float(pred.probs[:, i].max()), i))
    return PredictionHeatmap(pred.tokens, _labels(tokenizer, kept), tuple(kept), pred.probs[:, kept],
                             pred.actual_next)


# ---------------------------------------------------------------------------------------------------------------
# Embeddings


def _pca_solver() -> str:
    # Both solvers are exact (no randomness, signs fixed by scikit-learn): same weights, same picture. The covariance
    # solver (scikit-learn >= 1.5) diagonalises a d_model x d_model matrix instead of taking the SVD of the whole
    # vocab x d_model table: ~1 ms instead of 10-2000 ms (a multi-threaded SVD crawls when the CPU is busy).
    import sklearn

    major, minor = (int(x) for x in sklearn.__version__.split(".")[:2])
    return "covariance_eigh" if (major, minor) >= (1, 5) else "full"


def _embedding_matrix(model: CuteLLM) -> np.ndarray:
    return model.tok_emb.weight.detach().double().cpu().numpy()


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def _similar(unit: np.ndarray, rows: list[int], candidates: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    """For each row id, the k most cosine-similar candidate ids (never itself), best first (ties: lower id)."""
    k = min(k, len(candidates) - 1)  # one candidate may be the row itself, which is never its own neighbour
    if k <= 0 or not rows:
        return [[] for _ in rows]
    sims = unit[rows] @ unit[candidates].T                        # (len(rows), len(candidates))
    sims[np.asarray(rows)[:, None] == candidates[None, :]] = -np.inf
    # argpartition finds the k best without sorting the whole row; then sort those k by (-similarity, id).
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    top_sims = np.take_along_axis(sims, top, axis=1)
    order = np.lexsort((candidates[top], -top_sims), axis=1)
    top, top_sims = np.take_along_axis(top, order, axis=1), np.take_along_axis(top_sims, order, axis=1)
    ids = candidates[top]
    return [list(zip(ids[r].tolist(), top_sims[r].tolist())) for r in range(len(rows))]


def _neighbour_pool(tokenizer: Tokenizer) -> np.ndarray:
    # Special tokens are left out of neighbour lists: <pad> and <mask> are never read in training, so their vectors
    # mean nothing and would only add noise.
    return np.array([i for i in range(tokenizer.vocab_size) if i not in tokenizer.special_ids], dtype=np.int64)


def token_id(tokenizer: Tokenizer, word: str) -> int:
    """The id of a single vocabulary token (matched as typed, then as the tokenizer would read it: lower-cased for
    words; for BPE also as a word after a space, "·cat", the form words take inside a sentence).

    Raises PromptError if `word` is empty, several tokens, or not in the vocabulary.
    """
    if isinstance(word, str) and word in tokenizer.token_to_id:
        return tokenizer.token_to_id[word]  # as typed: also finds " " or "\n" in a character model
    if not isinstance(word, str) or not word.strip():
        raise PromptError("type a word to look up")
    word = word.strip()
    pieces = tokenizer.tokenize(word)
    if len(pieces) != 1 and tokenizer.kind == "bpe":
        pieces = tokenizer.tokenize(" " + word)
    if len(pieces) != 1:
        raise PromptError(f"'{word}' is {len(pieces)} tokens; type a single word")
    if pieces[0] not in tokenizer.token_to_id:
        raise PromptError(f"'{word}' is not in the model's vocabulary of {tokenizer.vocab_size:,} tokens")
    return tokenizer.token_to_id[pieces[0]]


def nearest_neighbours(model: CuteLLM, tokenizer: Tokenizer, word: str, k: int = N_NEIGHBOURS) -> pd.DataFrame:
    """The k tokens whose embeddings point most nearly the same way as `word`'s (cosine similarity, 1 = same
    direction), best first. The word itself and the special tokens are excluded.

    Columns: token, id, similarity, frequency (how often the token appeared in the training corpus).
    """
    _check_int("k", k, 1)
    wid = token_id(tokenizer, word)
    unit = _unit_rows(_embedding_matrix(model))
    pairs = _similar(unit, [wid], _neighbour_pool(tokenizer), k)[0]
    return pd.DataFrame([{"token": tokenizer.token(i), "id": i, "similarity": s,
                          "frequency": int(tokenizer.counts.get(tokenizer.token(i), 0))} for i, s in pairs],
                        columns=["token", "id", "similarity", "frequency"])


def embedding_pca(model: CuteLLM, tokenizer: Tokenizer, n_components: int = 2, top_n: int | None = None,
                  highlight: str | None = None, include_special: bool = True,
                  reference: CuteLLM | None = None) -> pd.DataFrame:
    """The token embedding table projected by PCA onto its 2 or 3 directions of largest variance.

    One row per token shown: token, id, x, y (and z for 3 components), frequency (corpus count), is_special,
    neighbours / neighbour_sims (its N_NEIGHBOURS nearest tokens by cosine similarity in the full embedding space,
    best first, as tuples), is_highlight, is_neighbour (one of the highlighted word's neighbours).

    PCA is fitted on every ordinary (non-special) token whichever subset is shown, so a token keeps its place.
    `top_n` keeps the N most frequent ordinary tokens (plus the special tokens with `include_special`, and the
    highlighted word and its neighbours, always). `highlight` must be a vocabulary word (PromptError otherwise).
    The fraction of variance each axis explains is in `frame.attrs["explained_variance_ratio"]`.

    `reference` (e.g. the final weights of a training run) fixes the axes: PCA is fitted on its embeddings and
    `model`'s are projected onto them, so snapshots along a run share one map and points move instead of flipping.
    `frame.attrs["axis_ranges"]` then spans the shown tokens under both weights ({"x": (low, high), ...}), so an
    untrained snapshot shows as a tight cloud on the final map's scale instead of being zoomed in.
    """
    # Imported here: scikit-learn takes a while to import and most callers never need it.
    from sklearn.decomposition import PCA

    if n_components not in (2, 3):
        raise ConfigError(f"n_components: must be 2 or 3, got {n_components!r}")
    if top_n is not None:
        _check_int("top_n", top_n, 1)
    matrix = _embedding_matrix(model)
    pool = _neighbour_pool(tokenizer)
    # Fit on the ordinary tokens only: <pad> and <mask> sit far from every word (they are never read as words) and
    # would otherwise spend the first axes on themselves. Special tokens are still projected and shown.
    basis = matrix if reference is None else _embedding_matrix(reference)
    if basis.shape != matrix.shape:
        raise ConfigError("reference: must have the same vocabulary and width as the model")
    fit_rows = basis[pool] if len(pool) > n_components else basis
    pca = PCA(n_components=n_components, svd_solver=_pca_solver(), random_state=0).fit(fit_rows)
    coords = pca.transform(matrix)
    unit = _unit_rows(matrix)
    special = tokenizer.special_ids

    focus: int | None = token_id(tokenizer, highlight) if highlight else None
    focus_neighbours = {i for i, _ in _similar(unit, [focus], pool, N_NEIGHBOURS)[0]} if focus is not None else set()
    ordinary = [i for i in range(tokenizer.vocab_size) if i not in special]
    if top_n is not None:
        # Most frequent first; equal counts keep vocabulary order (which is itself by frequency for word models).
        ordinary = sorted(ordinary, key=lambda i: (-tokenizer.counts.get(tokenizer.token(i), 0), i))[:top_n]
    shown = set(ordinary) | focus_neighbours | ({focus} if focus is not None else set())
    if include_special:
        shown |= special
    rows = sorted(shown)

    neighbours = _similar(unit, rows, pool, N_NEIGHBOURS)
    axes = "xyz"[:n_components]
    records = []
    for r, i in enumerate(rows):
        token = tokenizer.token(i)
        record = {"token": token, "id": i}
        record.update({a: float(coords[i, j]) for j, a in enumerate(axes)})
        record.update({"frequency": int(tokenizer.counts.get(token, 0)), "is_special": i in special,
                       "neighbours": tuple(tokenizer.token(n) for n, _ in neighbours[r]),
                       "neighbour_sims": tuple(s for _, s in neighbours[r]),
                       "is_highlight": i == focus, "is_neighbour": i in focus_neighbours})
        records.append(record)
    frame = pd.DataFrame(records, columns=["token", "id", *axes, "frequency", "is_special", "neighbours",
                                           "neighbour_sims", "is_highlight", "is_neighbour"])
    frame.attrs["explained_variance_ratio"] = tuple(float(r) for r in pca.explained_variance_ratio_)
    if reference is not None:
        both = np.concatenate([coords[rows], pca.transform(basis)[rows]])
        frame.attrs["axis_ranges"] = {a: _padded(both[:, j]) for j, a in enumerate(axes)}
    return frame


def _padded(values: np.ndarray, pad: float = 0.08) -> tuple[float, float]:
    low, high = float(values.min()), float(values.max())
    margin = pad * (high - low or 1.0)
    return low - margin, high + margin


# ---------------------------------------------------------------------------------------------------------------
# Attention and logit lens


@dataclass(frozen=True, eq=False)
class AttentionMaps:
    """weights[l, h, i, j]: how much position i reads from position j in layer l, head h (each row sums to 1).

    In a causal model the entries above the diagonal (j > i, the future) are exactly 0.
    """

    tokens: tuple[str, ...]
    weights: np.ndarray                     # (n_layers, n_heads, T, T), float64
    causal: bool

    @property
    def n_layers(self) -> int:
        return self.weights.shape[0]

    @property
    def n_heads(self) -> int:
        return self.weights.shape[1]


def attention_maps(model: CuteLLM, tokenizer: Tokenizer, text: str = DEFAULT_TEXT) -> AttentionMaps:
    """Every layer's and head's attention weights over the tokens of `text`."""
    ids = encode_context(model, tokenizer, text)
    trace = _trace(model, ids)
    weights = torch.stack([a[0] for a in trace.attentions]).double().cpu().numpy()
    return AttentionMaps(_labels(tokenizer, ids), weights, model.config.causal)


@dataclass(frozen=True, eq=False)
class LogitLens:
    """What the model would predict at each position if it stopped after each layer.

    Row 0 is the embedding output (before any block), row l the output of block l; the last row is the model's real
    prediction. top_tokens[l, t] is the most likely next token read from layer l at position t (through the final
    LayerNorm and LM head), top_probs[l, t] its probability.
    """

    tokens: tuple[str, ...]                 # input token at each position (the columns)
    layer_labels: tuple[str, ...]           # "embedding", "block 1", ...
    top_tokens: np.ndarray                  # (n_layers + 1, T), object array of str
    top_probs: np.ndarray                   # (n_layers + 1, T), float64
    actual_next: tuple[str | None, ...]

    def to_frame(self) -> pd.DataFrame:
        """Long form: layer (0 = embedding), layer_label, position, input_token, predicted, prob, actual_next."""
        n_layers, n_pos = self.top_probs.shape
        return pd.DataFrame([{"layer": l, "layer_label": self.layer_labels[l], "position": t,
                              "input_token": self.tokens[t], "predicted": str(self.top_tokens[l, t]),
                              "prob": float(self.top_probs[l, t]), "actual_next": self.actual_next[t]}
                             for l in range(n_layers) for t in range(n_pos)])


def logit_lens(model: CuteLLM, tokenizer: Tokenizer, text: str = DEFAULT_TEXT) -> LogitLens:
    """Apply the final LayerNorm + LM head (`model.logits_from_hidden`) to every layer's hidden states."""
    ids = encode_context(model, tokenizer, text)
    trace = _trace(model, ids)
    with evaluating(model):
        hidden = torch.stack([h[0] for h in trace.hidden_states])          # (n_layers + 1, T, d_model)
        probs = _softmax(model.logits_from_hidden(hidden))                  # (n_layers + 1, T, vocab)
    best = probs.argmax(axis=-1)
    top_tokens = np.vectorize(tokenizer.token, otypes=[object])(best)
    labels = ("embedding", *(f"block {i}" for i in range(1, len(trace.hidden_states))))
    tokens = _labels(tokenizer, ids)
    return LogitLens(tokens, labels, top_tokens, np.take_along_axis(probs, best[..., None], -1)[..., 0],
                     (*tokens[1:], None))
