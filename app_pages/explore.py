"""Explore: pictures of the active model — its tokens, architecture, predictions, embeddings, attention, logit lens,
and what it loses when a part is switched off."""

import streamlit as st

from cutellm import CuteLLMError

from cutellm.tasks import TASKS, task_example
from cutellm.views import charts, inspection
from cutellm.views.attention_steps import derive_attention
from cutellm.views.attention_steps_charts import VIEWS as STEP_VIEWS
from cutellm.views.attention_steps_charts import attention_steps_figure
from ui import share, state
from ui.text import glossary_link
from ui.notices import note_beyond_context, warn_unknown_words
from ui.explore.ablation_view import DEFAULTS as ABLATION_DEFAULTS
from ui.explore.ablation_view import ablation_tab
from ui.explore.timeline import timeline_model
from ui.explore.tokens_view import tokens_tab

TABS = ("Tokens", "Architecture", "Next-token probabilities", "Prediction heatmap", "Word embeddings", "Attention",
        "Logit lens", "Switch parts off")
state.keep({"ex_text": inspection.DEFAULT_TEXT, "ex_tab": "Tokens", "ex_position": "all",
            "ex_emb_dims": "2D", "ex_emb_top": 300, "ex_emb_highlight": inspection.DEFAULT_HIGHLIGHT,
            "ex_emb_special": False, "ex_att_layer": 1, "ex_att_head": "all heads", "ex_att_pos": "last",
            **ABLATION_DEFAULTS})

st.title("Explore")
st.caption("Look inside the active model. Every picture is computed from the model in the sidebar and the text "
           "below.")
share.sync([share.Param("text", "ex_text", share.text(2000)), share.choice("tab", "ex_tab", {t: t for t in TABS}),
            share.Param("layer", "ex_att_layer", share.number(1, 64, whole=True)),
            share.choice("head", "ex_att_head", {"all": "all heads", **{str(h): h for h in range(1, 65)}})])
active = state.active_model()
tokenizer, cfg = active.tokenizer, active.model.config
# A task model reads its problems, not English: its text starts as one of its held-out problems. A text the user
# wrote stays; the previous model's starting text gives way to this one's.
task = TASKS.get(active.meta.get("task", ""))
default_text = task_example(task) if task else inspection.DEFAULT_TEXT
if st.session_state.ex_text in (st.session_state.get("ex_default"), inspection.DEFAULT_TEXT):
    st.session_state.ex_text = default_text
st.session_state.ex_default = default_text

st.text_input("Text to look at", key="ex_text",
              help=f"The model reads at most its last {cfg.block_size} tokens.")
text = st.session_state.ex_text
warn_unknown_words(tokenizer, text)
note_beyond_context(tokenizer.encode(text), cfg.block_size)
model = timeline_model(active, text)  # the model at the chosen step of its run (or the active model itself)


# The glossary term each picture rests on (Learn's glossary explains it in one line).
TERM_OF = {"architecture": "d_model", "logits": "logits", "heatmap": "softmax", "embeddings": "PCA",
           "attention": "attention", "logit_lens": "logit lens"}


def explain(key: str) -> None:
    term = TERM_OF[key]
    st.caption(f"{charts.VIEWS[key].explanation} {glossary_link(term)}")


def show(fig, key: str, **kwargs):
    return st.plotly_chart(fig, key=key, config={"displaylogo": False}, **kwargs)


def architecture_tab() -> None:
    explain("architecture")
    arch = inspection.architecture_summary(model)
    show(charts.architecture_figure(arch), "ex_arch")
    st.dataframe(arch.to_frame(), hide_index=True, width="stretch")


def logits_tab() -> None:
    explain("logits")
    table = inspection.next_token_table(model, tokenizer, text, top_k=5)
    positions = sorted(table["position"].unique())
    options = ["all", *positions]
    if st.session_state.ex_position not in options:
        st.session_state.ex_position = "all"
    st.select_slider("Position", options=options, key="ex_position",
                     format_func=lambda p: "all positions" if p == "all" else f"{p}",
                     help="Show every position, or zoom in on one.")
    chosen = None if st.session_state.ex_position == "all" else int(st.session_state.ex_position)
    show(charts.logits_figure(table, position=chosen), "ex_logits")


def heatmap_tab() -> None:
    explain("heatmap")
    show(charts.prediction_heatmap_figure(inspection.prediction_heatmap(model, tokenizer, text)), "ex_heatmap")


def embeddings_tab() -> None:
    explain("embeddings")
    a, b, c, d = st.columns([1, 2, 2, 1.3])
    a.radio("View", ["2D", "3D"], key="ex_emb_dims", horizontal=True)
    n_words = max(1, tokenizer.vocab_size - len(tokenizer.special_ids))
    st.session_state.ex_emb_top = min(int(st.session_state.ex_emb_top), n_words)
    b.slider("Most frequent words shown", 1, n_words, key="ex_emb_top")
    c.text_input("Highlight a word", key="ex_emb_highlight", help="The word and its 5 nearest neighbours stand out.")
    d.checkbox("Special tokens", key="ex_emb_special", help="Show <pad>, <unk> and <mask> (as diamonds).")
    highlight = st.session_state.ex_emb_highlight.strip() or None
    if tokenizer.kind == "word" and highlight:
        highlight = highlight.lower()
    try:
        if highlight:
            inspection.token_id(tokenizer, highlight)
    except CuteLLMError:
        st.info("That word is not in the vocabulary as one token, so nothing is highlighted.", icon=":material/info:")
        highlight = None
    three_d = st.session_state.ex_emb_dims == "3D"
    # A timeline snapshot is drawn on the final weights' axes, so words move into place instead of axes flipping.
    frame = inspection.embedding_pca(model, tokenizer, n_components=3 if three_d else 2,
                                     top_n=int(st.session_state.ex_emb_top), highlight=highlight,
                                     include_special=st.session_state.ex_emb_special,
                                     reference=active.model if model is not active.model else None)
    fig = charts.embedding_figure(frame)
    if three_d:
        show(fig, "ex_emb3d")
        return
    event = show(fig, "ex_emb", on_select="rerun", selection_mode=("box", "lasso", "points"))
    picked = [p.get("customdata") for p in (event.selection.points if event else []) if p.get("customdata")]
    words = [w[0] if isinstance(w, (list, tuple)) else w for w in picked]
    if words:
        rows = frame[frame["token"].isin(words)][["token", "frequency", "neighbours"]].copy()
        rows["neighbours"] = rows["neighbours"].map(", ".join)
        st.markdown(f"**{len(rows)} selected**")
        st.dataframe(rows, hide_index=True, width="stretch")
    else:
        st.caption("Drag a box or lasso around points to list those words here.")


def attention_tab() -> None:
    explain("attention")
    if task is not None:
        st.info(f"**A {task.name} model.** {task.attention_hint}",
                icon=":material/search:")
    att = inspection.attention_maps(model, tokenizer, text)
    a, b = st.columns(2)
    st.session_state.ex_att_layer = min(int(st.session_state.ex_att_layer), att.n_layers)
    a.selectbox("Layer", list(range(1, att.n_layers + 1)), key="ex_att_layer")
    heads = ["all heads", *range(1, att.n_heads + 1)]
    if st.session_state.ex_att_head not in heads:
        st.session_state.ex_att_head = "all heads"
    b.selectbox("Head", heads, key="ex_att_head")
    head = st.session_state.ex_att_head
    show(charts.attention_figure(att, layer=st.session_state.ex_att_layer - 1,
                                 head=None if head == "all heads" else int(head) - 1), "ex_attention")
    attention_steps_section(att, st.session_state.ex_att_layer - 1, 0 if head == "all heads" else int(head) - 1)


def attention_steps_section(att: inspection.AttentionMaps, layer: int, head: int) -> None:
    """One row of the map derived: query, keys, scores, softmax, weighted values, with the model's numbers."""
    st.subheader(STEP_VIEWS["attention_steps"].title)
    st.caption(STEP_VIEWS["attention_steps"].explanation)
    positions = [*range(len(att.tokens) - 1), "last"]   # "last" follows the text as it changes
    if st.session_state.ex_att_pos not in positions:
        st.session_state.ex_att_pos = "last"
    st.select_slider("Token whose row to derive", positions, key="ex_att_pos",
                     format_func=lambda p: f"{p} · {att.tokens[p]}" if p != "last" else
                     f"{len(att.tokens) - 1} · {att.tokens[-1]} (the last)",
                     help="Its query is compared with the keys of every token up to it.")
    if st.session_state.ex_att_head == "all heads":
        st.caption("Head 1 (choose a head above to derive another).")
    position = None if st.session_state.ex_att_pos == "last" else int(st.session_state.ex_att_pos)
    steps = derive_attention(model, tokenizer, text, layer, head, position)
    show(attention_steps_figure(steps), "ex_attention_steps")
    q, v = st.columns(2)
    q.markdown(f"**Query** of “{steps.tokens[steps.position]}” ({steps.head_dim} numbers): "
               f"`{_numbers(steps.query)}`" + (" — rotated by its position (RoPE), as the keys are" if steps.rotary
                                               else ""))
    v.markdown(f"**Output** = Σ weight × value: `{_numbers(steps.output)}`. Every head's output, side by side, goes "
               "through the output projection into the residual stream.")
    st.dataframe(steps.to_frame(), hide_index=True, width="stretch",
                 column_config={"weight": st.column_config.ProgressColumn("weight", min_value=0.0, max_value=1.0,
                                                                          format="%.3f")})
    row = att.weights[layer, head, steps.position, :len(steps.weights)]
    gap = float(abs(row - steps.weights.double().numpy()).max())
    st.caption(f"These weights are row {steps.position} of the map above (largest difference {gap:.0e}): the model "
               "computes exactly this, for every token and every head at once.")


def _numbers(vector, shown: int = 6) -> str:
    values = vector.tolist()
    return "[" + ", ".join(f"{x:+.2f}" for x in values[:shown]) + (", …]" if len(values) > shown else "]")


def logit_lens_tab() -> None:
    explain("logit_lens")
    lens = inspection.logit_lens(model, tokenizer, text)
    show(charts.logit_lens_figure(lens), "ex_lens")


RENDER = dict(zip(TABS, (lambda: tokens_tab(tokenizer, text), architecture_tab, logits_tab, heatmap_tab,
                         embeddings_tab, attention_tab, logit_lens_tab, lambda: ablation_tab(model, active, text))))

for name, tab in zip(RENDER, st.tabs(list(RENDER), key="ex_tab", on_change="rerun")):
    if tab.open is False:  # lazy tabs: only the open one is computed
        continue
    with tab:
        try:
            RENDER[name]()
        except CuteLLMError as err:
            st.error(str(err), icon=":material/error:")
