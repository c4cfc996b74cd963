"""The Learn page's lessons: each draws a few short paragraphs, one live figure or control computed from the active
model, and a *Try this* whose outcome it notices. A lesson returns that outcome (a sentence with the numbers it
saw) once the learner has done the Try this, or None before.

The numbers come from the core (cutellm.views, cutellm.sampling, cutellm.tasks), as on every other page; a lesson
only decides what to show and when its Try this is done.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

from cutellm import CuteLLMError
from cutellm.chat import (MAX_REPLY_TOKENS, ChatReply, Message, add_chat_tokens, check_message, reply,
                          template)
from cutellm.completion import complete_phrase
from cutellm.config import ModelConfig, TrainConfig
from cutellm.data import load_corpus
from cutellm.errors import TrainingBusyError
from cutellm.inference import encode_prompt, generate, next_token_logits
from cutellm.lab.jobs import TrainingJob
from cutellm.lab.runs import prepare_run
from cutellm.lab.samples import SampleSpec
from cutellm.presets import TINY
from cutellm.sampling import SamplingSettings, final_distribution
from cutellm.tasks import TASKS, evaluate_task, task_configs, task_corpus, task_example
from cutellm.views import ablation, ablation_charts, charts, inspection
from cutellm.views.attention_steps import derive_attention
from cutellm.views.attention_steps_charts import attention_steps_figure
from cutellm.views.curve import overfitting, perplexity
from cutellm.views.live_chart import live_loss_svg

from .. import state
from ..text import chips_html, code_span, conversation_chips_html, highlighted, svg_img, words_list

Outcome = str | None


def md(text: str) -> str:
    """Model or user text inside a markdown sentence, shown as itself (no emphasis, LaTeX or links)."""
    return "".join(f"\\{c}" if c in "\\`*_$<>[]#|~" else c for c in text)


@dataclass(frozen=True)
class Lesson:
    title: str
    draw: Callable[[state.LoadedModel], Outcome]
    page: str            # the full page this lesson is a doorway to (its URL path: the file's stem)
    page_label: str
    # The full page's settings (ui/share.py's names) that show what the lesson shows, from the lesson's own.
    link: Callable[[Mapping[str, Any]], dict[str, Any]] = lambda s: {}


def try_this(text: str) -> None:
    st.markdown(f":material/touch_app: **Try this:** {text}")


def _show(fig, key: str) -> None:
    st.plotly_chart(fig, key=key, config={"displaylogo": False})


# -- 1. Text becomes tokens --------------------------------------------------------------------------------------
def tokens_lesson(active: state.LoadedModel) -> Outcome:
    tok = active.tokenizer
    st.markdown("A language model never sees letters. A **tokenizer** cuts the text into pieces (**tokens**) and "
                "gives each an id, a row of the model's vocabulary table. Everything after this step is arithmetic "
                "on those ids.")
    st.markdown(f"The active model, **{active.name}**, uses a **{tok.kind}** tokenizer with **{tok.vocab_size:,}** "
                "tokens. " + {"word": "Each word is one token; a word it never saw in training has no id and is "
                                      "read as `<unk>` (unknown), a blank.",
                              "char": "Each character is one token: it can read any word made of characters it "
                                      "has seen, at the price of long sequences.",
                              "bpe": "Frequent words are one token; a rare word is spelled from smaller pieces, "
                                     "so nothing is unknown (a `·` is a space kept in front of a word)."}[tok.kind])
    text = st.text_input("Text", key="learn_tok_text", max_chars=300)
    if not text.strip():
        st.warning("Type some text to see its tokens.")
        return None
    pieces = inspection.token_pieces(tok, text)
    st.html(chips_html(pieces))
    st.caption(f"{len(pieces)} tokens; hover one for its id.")
    try_this("add a word this model has surely never read, like *zebra* or *Quixotic*.")
    unknown = [p for p in pieces.itertuples() if p.unknown]
    if unknown:
        return (f"“{md(unknown[0].piece)}” is not among the {tok.vocab_size:,} tokens this model knows, so it reads "
                "`<unk>`: whatever the word meant is lost before the model starts. BPE avoids this by spelling rare "
                "words from pieces (Explore → Tokens puts the three tokenizers side by side).")
    if tok.kind == "bpe":
        words = text.split()
        split = [w for w in words if len(tok.encode(" " + w)) > 1]
        if split:
            parts = [tok.token(i) for i in tok.encode(" " + split[-1])]
            return (f"“{md(split[-1])}” is not one token: BPE spells it as {len(parts)} pieces, "
                    f"{' · '.join(md(p) for p in parts)}. Nothing is unknown, but a rare word costs more of the "
                    "context.")
    return None


# -- 2. Words as points ----------------------------------------------------------------------------------------
def embeddings_lesson(active: state.LoadedModel) -> Outcome:
    tok = active.tokenizer
    st.markdown(f"A token's id picks one row of the **embedding table**: a list of {active.model.config.d_model} "
                "numbers, learned in training, that is all the model knows of the token. Tokens used in similar "
                "places end up with similar rows. To draw them we project the rows onto the two directions along "
                "which they differ most (**PCA**); the percentage on each axis is how much of the differences that "
                "direction shows, so a flat picture hides the rest. **Neighbours** are measured in all the "
                "dimensions, by cosine similarity.")
    word = st.text_input("A word to highlight", key="learn_emb_word", max_chars=40).strip()
    word = word.lower() if tok.kind == "word" else word
    try:
        frame = inspection.embedding_pca(active.model, tok, 2, top_n=200, highlight=word or None)
    except CuteLLMError as err:   # not a token of this model: the map without a highlight
        st.warning(f"{err} Try another word.", icon=":material/warning:")
        word, frame = "", inspection.embedding_pca(active.model, tok, 2, top_n=200)
    _show(charts.embedding_figure(frame), "learn_emb_fig")
    try_this("highlight a word of your own (an animal, a place, a food): are its neighbours the words you expected?")
    chosen = frame[frame["is_highlight"]]
    if not word or word == DEFAULTS["learn_emb_word"] or chosen.empty:
        return None
    row = chosen.iloc[0]
    near = ", ".join(f"“{md(n)}” ({sim:.2f})" for n, sim in list(zip(row["neighbours"], row["neighbour_sims"]))[:3])
    return (f"The nearest tokens to “{md(word)}” are {near} (cosine similarity: 1 means the same direction). The model "
            "put them close because they occur in similar places in its training text, not because it knows what "
            "they mean.")


# -- 3. Attention, derived -----------------------------------------------------------------------------------------
def attention_lesson(active: state.LoadedModel) -> Outcome:
    model, tok, cfg = active.model, active.tokenizer, active.model.config
    st.markdown("Each token asks a question of the tokens before it. Its **query** (a vector) is compared with every "
                "earlier token's **key** by a dot product; the scores are divided by √(head size), the future is "
                "masked, and a **softmax** turns them into weights that add up to 1. The token then takes that "
                "mix of the earlier tokens' **values**. A **head** does this with its own query, key and value "
                f"matrices; this model has {cfg.n_heads} heads in each of its {cfg.n_layers} layers.")
    text = st.text_input("Text", key="learn_att_text", max_chars=300)
    try:
        n = len(inspection.token_pieces(tok, text)) if text.strip() else 0
        if n == 0:
            st.warning("Type some text to look at.")
            return None
        a, b, c = st.columns(3)
        layer = a.selectbox("Layer", range(1, cfg.n_layers + 1), key="learn_att_layer")
        head = b.selectbox("Head", range(1, cfg.n_heads + 1), key="learn_att_head")
        st.session_state.learn_att_pos = min(int(st.session_state.learn_att_pos), min(n, cfg.block_size) - 1)
        position = c.number_input("Token (position)", 0, min(n, cfg.block_size) - 1, key="learn_att_pos")
        steps = derive_attention(model, tok, text, layer - 1, head - 1, int(position))
    except CuteLLMError as err:
        st.error(str(err), icon=":material/error:")
        return None
    _show(attention_steps_figure(steps), "learn_att_fig")
    st.dataframe(steps.to_frame(), hide_index=True, width="stretch")
    try_this(f"keep the token and choose another head of layer {layer}: its weights change, because each head "
             "compares its own queries and keys.")
    if head == 1:
        return None
    first = derive_attention(model, tok, text, layer - 1, 0, int(position))

    def top(s) -> str:
        j = int(s.weights.argmax())
        return f"{float(s.weights[j]):.0%} on “{md(s.tokens[j])}”"

    return (f"For “{md(steps.tokens[steps.position])}” in layer {layer}, head 1 puts {top(first)}; head {head} puts "
            f"{top(steps)}. Same token, same text: only the head's matrices differ.")


# -- 4. What each layer adds --------------------------------------------------------------------------------------
def logit_lens_lesson(active: state.LoadedModel) -> Outcome:
    bottom = ("The bottom row reads the embedding alone; this model's output head is its embedding table (tied), "
              "and a row matches itself best, so there it mostly \"predicts\" the input token itself."
              if active.model.config.tie_weights else "The bottom row reads the embedding alone, before any block.")
    st.markdown("Each token's vector travels up the model in the **residual stream**: every block reads it and adds "
                "its own contribution. The **logit lens** stops the model early: it reads the stream after each "
                f"layer with the final norm and the output head, as if the model ended there. {bottom} Each block "
                "above moves the stream towards the next token, using the words before it.")
    text = st.text_input("Text", key="learn_lens_text", max_chars=300)
    try:
        lens = inspection.logit_lens(active.model, active.tokenizer, text)
    except CuteLLMError as err:
        st.error(str(err), icon=":material/error:")
        return None
    _show(charts.logit_lens_figure(lens), "learn_lens_fig")
    n = len(lens.tokens)
    st.session_state.learn_lens_pos = min(int(st.session_state.learn_lens_pos), n - 1)
    position = st.number_input("Position to follow", 0, n - 1, key="learn_lens_pos")
    try_this("follow another position: at which layer does the model's final guess first come out on top?")
    if position == DEFAULTS["learn_lens_pos"]:
        return None
    final = lens.top_tokens[-1, position]
    first = next(layer for layer in range(len(lens.layer_labels)) if all(
        lens.top_tokens[later, position] == final for later in range(layer, len(lens.layer_labels))))
    return (f"After “{md(lens.tokens[position])}” the model finally predicts “{md(final)}” "
            f"({lens.top_probs[-1, position]:.0%}); read from the {lens.layer_labels[first]} on, it is already the "
            f"top guess. Below that, the stream still pointed elsewhere (“{md(lens.top_tokens[0, position])}” from the "
            "embedding alone).")


# -- 5. From logits to one token -----------------------------------------------------------------------------------
def sampling_lesson(active: state.LoadedModel) -> Outcome:
    st.markdown("At the last position the model gives one score, a **logit**, to every token of its vocabulary. The "
                "**softmax** makes them probabilities. To pick the next token we may take the most likely one "
                "(greedy) or draw one at random; the **temperature** divides the logits first: below 1 it sharpens "
                "the distribution, above 1 it flattens it, so unlikely tokens get drawn more often.")
    prompt = st.text_input("Prompt", key="learn_samp_prompt", max_chars=300)
    temperature = st.slider("Temperature", 0.1, 2.0, step=0.1, key="learn_samp_temp")
    try:
        logits = next_token_logits(active.model, active.tokenizer, encode_prompt(active.tokenizer, prompt))
    except CuteLLMError as err:
        st.error(str(err), icon=":material/error:")
        return None
    at_one = final_distribution(logits, SamplingSettings(temperature=1.0))
    now = final_distribution(logits, SamplingSettings(temperature=float(temperature)))
    top = torch.argsort(at_one, descending=True)[:8].tolist()
    frame = pd.DataFrame({"token": [active.tokenizer.token(i) for i in top],
                          "at temperature 1": [float(at_one[i]) for i in top],
                          f"at temperature {temperature:.1f}": [float(now[i]) for i in top]})
    st.dataframe(frame, hide_index=True, width="stretch", column_config={
        c: st.column_config.ProgressColumn(c, min_value=0.0, max_value=1.0, format="%.3f")
        for c in frame.columns[1:]})
    try_this("raise the temperature to 1.5 or more and watch the top token's share.")
    if temperature < 1.5:
        return None
    best = top[0]
    return (f"At temperature {temperature:.1f} the top token “{md(active.tokenizer.token(best))}” fell from "
            f"{float(at_one[best]):.0%} to {float(now[best]):.0%}; the 8th most likely rose from "
            f"{float(at_one[top[-1]]):.1%} to {float(now[top[-1]]):.1%}. Sampled text gets more surprising, and "
            "more often wrong.")


# -- 9. Scoring whole sentences ------------------------------------------------------------------------------------
def blanks_lesson(active: state.LoadedModel) -> Outcome:
    st.markdown("A model that only ever predicts the next token can still fill a blank in the middle of a sentence: "
                "try each candidate word in the blank and score the **whole sentence**, the sum of the "
                "log-probabilities of all its tokens. The words after the blank count too: in *the \\_\\_\\_ "
                "barked*, *barked* has its say about the blank although it comes after it.")
    phrase = st.text_input("A phrase with ___", key="learn_blank_phrase", max_chars=200)
    try:
        result = complete_phrase(active.model, active.tokenizer, phrase, top_k=5, words=active.meta.get("words"))
    except CuteLLMError as err:
        st.warning(str(err), icon=":material/warning:")
        return None
    blank = result.blanks[0]
    st.markdown(f"Best: {code_span(result.filled_text)}")
    st.dataframe(pd.DataFrame({"word": [c.word for c in blank.candidates], "probability": [c.prob for c in
                                                                                            blank.candidates]}),
                 hide_index=True, width="stretch", column_config={"probability": st.column_config.ProgressColumn(
                     "probability", min_value=0.0, max_value=1.0, format="%.3f")})
    try_this("change only the words *after* the blank and watch the best word change.")
    if phrase.strip() == DEFAULTS["learn_blank_phrase"]:
        return None
    return (f"With {code_span(phrase)} the model picks “{md(blank.best.word)}” ({blank.best.prob:.0%} of the "
            "candidates' probability): the words on both sides of the blank decide.")


# -- 6. What the loss means ----------------------------------------------------------------------------------------
LOSS_STEPS = TINY.values["max_steps"]   # the "tiny & fast" preset: a 1-layer model, seconds on 2 cores


def loss_lesson(active: state.LoadedModel) -> Outcome:
    st.markdown("Training shows the model a window of text and asks, at every position, for the probability of the "
                "token that really comes next. The **loss** is the average of −ln of those probabilities "
                "(**cross-entropy**): 0 if it were always sure and right, large when it is surprised. Two reference "
                "lines tell how good a number is: a **uniform guess** over V tokens scores ln V, and guessing by "
                "each token's frequency (the **unigram** model) scores lower. **Perplexity**, e^loss, says the same "
                "as \"as unsure as choosing among this many tokens\". The **validation** loss is measured on text "
                "held out of training, so it says what carries over to new text.")
    result = st.session_state.get("learn_loss")
    try_this(f"train a tiny model on the bundled stories here ({LOSS_STEPS} steps) and read what it writes at "
             "each loss.")
    if st.button(f"Train a tiny model ({LOSS_STEPS} steps)", icon=":material/play_arrow:", key="learn_loss_train"):
        result = train_tiny_model()
    if result is None:
        return None
    job = result["job"]
    snap = job.snapshot()
    loss_chart(job)
    val = {m.step: m.val_loss for m in snap.history if m.val_loss is not None}
    rows = [{"step": s.step, "validation loss": val.get(s.step), "perplexity": perplexity(val[s.step]) if s.step in val
             else None, "what it writes after “the cat sat on the”": s.continuation} for s in snap.samples]
    st.markdown("**What a loss reads like**: the same prompt, continued greedily at several points of the run.")
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config={
        "validation loss": st.column_config.NumberColumn(format="%.3f"),
        "perplexity": st.column_config.NumberColumn(format="%.1f")})
    first, last = snap.samples[0], snap.samples[-1]
    return (f"The validation loss fell from {val[first.step]:.2f} (a uniform guess scores "
            f"{job.baselines.uniform:.2f}) to {val[last.step]:.2f}, perplexity {perplexity(val[last.step]):,.0f}: "
            f"from “{md(first.continuation)}” at step {first.step} to “{md(last.continuation)}” at step {last.step}.")


def tiny_configs(**model) -> tuple[ModelConfig, TrainConfig]:
    """The "tiny & fast" preset's configs (model fields given on top), evaluated 10 times along its steps."""
    model_config, train_config = TINY.configs(**model)
    return model_config, replace(train_config, eval_interval=LOSS_STEPS // 10)


def stories(words: int | None = None) -> str:
    text = load_corpus(state.ROOT / "data" / "training_data.txt")
    return text if words is None else " ".join(text.split()[:words])


def train_in_lesson(text: str, corpus: str, model_config: ModelConfig, train_config: TrainConfig, *,
                    tokenizer_kind: str = "word", samples: SampleSpec | None = None, task: str | None = None,
                    what: str = "") -> TrainingJob | None:
    """One run, trained while the lesson waits (seconds), on one of this server's training slots (none free: a
    notice, not a wait); the model then joins this session's models, so Explore and Generate can use it."""
    sessions = st.session_state.session_models
    try:
        run = prepare_run(text, corpus, model_config, train_config, name=sessions.next_run_name(),
                          tokenizer_kind=tokenizer_kind, task=task)
        job = TrainingJob(run, owner=st.session_state.session_owner, samples=samples,
                          worker=state.training_worker()).start()
    except TrainingBusyError as err:
        st.warning(f"Not now: {err}.", icon=":material/hourglass_top:")
        return None
    if job.queued:   # a lesson waits seconds, not for other people's runs
        job.leave()
        st.warning("Every training slot of this server is in use; try again when one frees up (the Train page "
                   "can queue a run).", icon=":material/hourglass_top:")
        return None
    with st.spinner(f"Training {run.name}{what}…"):
        job.join(300)
    if not job.usable:
        st.error(f"The run did not finish: {job.snapshot().error or job.stop_reason}", icon=":material/error:")
        return None
    state.add_session_model(job.name, job.model, job.tokenizer, job.checkpoint_metadata(),
                            job.result.snapshots if job.result else None)
    return job


def train_tiny_model() -> dict | None:
    """The tiny preset on the bundled corpus, with a live sample at every evaluation (a short run can afford it)."""
    job = train_in_lesson(stories(), "training_data.txt", *tiny_configs(),
                          samples=SampleSpec(prompt="the cat sat on the", budget=1.0), what=" on the bundled stories")
    if job is None or not job.snapshot().samples:
        return None
    st.session_state.learn_loss = {"job": job}
    return st.session_state.learn_loss


def loss_chart(job: TrainingJob) -> None:
    st.html(svg_img(live_loss_svg(job.snapshot().history, job.baselines), "loss by step"))


# -- 7. Overfitting ---------------------------------------------------------------------------------------------
# A short text and a model with room to memorise it (no dropout, no weight decay): measured on 2 cores, the
# validation loss falls for ~100 steps, then rises while the training loss keeps falling (a few seconds).
OVERFIT_WORDS, OVERFIT_STEPS = 3000, 300


def overfitting_lesson(active: state.LoadedModel) -> Outcome:
    st.markdown("The training loss says how well the model predicts the text it learns from; the **validation** "
                "loss, on text it never trains on, says how much of that carries over. With little text and a "
                "model big enough to memorise it, the two part ways: training keeps falling, validation turns "
                "back up. That is **overfitting**. The cures: more text, **dropout** (randomly silencing values "
                "while training), weight decay, a smaller model, or stopping where validation was lowest.")
    try_this(f"train a 2-layer model on only the first {OVERFIT_WORDS:,} words of the stories, "
             f"{OVERFIT_STEPS} steps, and watch the two curves part.")
    result = st.session_state.get("learn_overfit")
    if st.button(f"Train on {OVERFIT_WORDS:,} words ({OVERFIT_STEPS} steps)", icon=":material/play_arrow:",
                 key="learn_overfit_train"):
        model_config = ModelConfig(vocab_size=500, d_model=128, n_heads=4, n_layers=2, block_size=16, dropout=0.0)
        train_config = TrainConfig(batch_size=16, max_steps=OVERFIT_STEPS, learning_rate=2e-3, warmup_steps=20,
                                   weight_decay=0.0, eval_interval=25, seed=1)
        job = train_in_lesson(stories(OVERFIT_WORDS), f"first {OVERFIT_WORDS} words", model_config, train_config,
                              what=" on a short text")
        result = st.session_state.learn_overfit = {"job": job} if job else None
    if result is None:
        return None
    job = result["job"]
    loss_chart(job)
    history = job.snapshot().history
    evals = [(m.step, m.val_loss) for m in history if m.val_loss is not None]
    best_step, best = min(evals, key=lambda e: e[1])
    last_step, last = evals[-1]
    if overfitting(history) is None or last <= best:
        return (f"This time validation stayed close to its best ({best:.2f} at step {best_step}): no clear "
                "overfitting in this run.")
    return (f"Validation loss was lowest at step {best_step} ({best:.2f}) and rose to {last:.2f} by step "
            f"{last_step}, while the training loss fell to {history[-1].train_loss:.2f}: the model memorised its "
            f"{OVERFIT_WORDS:,} words instead of learning what carries over to new text.")


# -- 8. Why causal -------------------------------------------------------------------------------------------------
def causal_lesson(active: state.LoadedModel) -> Outcome:
    st.markdown("While training, each position predicts the next token, and the **causal mask** lets it look only "
                "at the tokens before it. Take the mask away and a position can read the very token it must "
                "predict: the training loss falls fast, because the model copies instead of predicting. At "
                "generation time there is no next token to peek at, and the text falls apart.")
    try_this(f"train the same tiny model ({LOSS_STEPS} steps) with and without the mask, and compare.")
    result = st.session_state.get("learn_causal")
    if st.button("Train both (with and without the mask)", icon=":material/play_arrow:", key="learn_causal_train"):
        jobs = [train_in_lesson(stories(), "training_data.txt", *tiny_configs(causal=causal),
                                what=" with the mask" if causal else " without the mask") for causal in (True, False)]
        result = st.session_state.learn_causal = {"jobs": jobs} if all(jobs) else None
    if result is None:
        return None
    prompt = "the cat sat on the"
    rows = []
    for job in result["jobs"]:
        rows.append({"mask": "causal" if job.model.config.causal else "none (sees the future)",
                     "training loss": job.result.final_train_loss, "validation loss": job.result.final_val_loss,
                     "greedy continuation": generate(job.model, job.tokenizer, prompt, 12)})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config={
        "training loss": st.column_config.NumberColumn(format="%.3f"),
        "validation loss": st.column_config.NumberColumn(format="%.3f")})
    causal, cheat = rows
    return (f"Without the mask the training loss reached {cheat['training loss']:.2f} (with it: "
            f"{causal['training loss']:.2f}), yet asked to continue “{prompt}” it writes "
            f"“{md(cheat['greedy continuation'])}” where the causal model writes "
            f"“{md(causal['greedy continuation'])}”. A low loss means nothing if the model could read the answer.")


# -- 10. Does a bigger model help? ----------------------------------------------------------------------------------
SCALE_WIDTHS = (32, 64, 128)


def scale_lesson(active: state.LoadedModel) -> Outcome:
    st.markdown("Language models got better mostly by getting bigger and reading more. Does that hold at this "
                "size? Train the same recipe at three widths (d_model) for the same number of steps and plot the "
                "validation loss against the number of parameters.")
    try_this(f"train three tiny models, d_model {', '.join(map(str, SCALE_WIDTHS))} ({LOSS_STEPS} steps each).")
    result = st.session_state.get("learn_scale")
    if st.button("Train three sizes", icon=":material/play_arrow:", key="learn_scale_train"):
        jobs = [train_in_lesson(stories(), "training_data.txt", *tiny_configs(d_model=width),
                                what=f", d_model {width}") for width in SCALE_WIDTHS]
        result = st.session_state.learn_scale = {"jobs": jobs} if all(jobs) else None
    if result is None:
        return None
    frame = pd.DataFrame([{"d_model": job.model.config.d_model, "parameters": job.model.num_parameters(),
                           "validation loss": job.result.final_val_loss} for job in result["jobs"]])
    fig = go.Figure(go.Scatter(x=frame["parameters"], y=frame["validation loss"], mode="lines+markers+text",
                               text=[f"d_model {d}" for d in frame["d_model"]], textposition="top center"))
    fig.update_xaxes(type="log", title="parameters (log scale)")
    fig.update_yaxes(title="validation loss after the same steps")
    fig.update_layout(height=360, margin=dict(l=60, r=30, t=30, b=50))
    _show(fig, "learn_scale_fig")
    small, big = result["jobs"][0], result["jobs"][-1]
    small = {"parameters": small.model.num_parameters(), "validation loss": small.result.final_val_loss}
    big = {"parameters": big.model.num_parameters(), "validation loss": big.result.final_val_loss}
    times = big["parameters"] / small["parameters"]
    change = "fell" if big["validation loss"] < small["validation loss"] else "did not fall"
    return (f"From {small['parameters']:,} to {big['parameters']:,} parameters ({times:.0f}×) the validation loss "
            f"{change}: {small['validation loss']:.2f} to {big['validation loss']:.2f} in the same steps. More "
            "parameters help only while there is text enough to fill them (the overfitting lesson shows the other "
            "side).")


# -- 11. GPT-2 or Llama: one part at a time -------------------------------------------------------------------
def blocks_lesson(active: state.LoadedModel) -> Outcome:
    cfg = active.model.config
    st.markdown("GPT-2 and Llama build the same block (attention, then an MLP, each added to the residual stream) "
                "with different parts: **positions** learned as a table or **RoPE** (queries and keys rotated by "
                "position, so attention sees distances), **LayerNorm** or **RMSNorm**, a **GELU** MLP or a gated "
                f"**SwiGLU** one. The active model uses a **{cfg.block_design}**. Does one part matter at this size? "
                "Change only that part, train both the same way, and compare.")
    try_this(f"train the tiny model ({LOSS_STEPS} steps) with learned positions and with RoPE, everything else "
             "equal.")
    result = st.session_state.get("learn_blocks")
    if st.button("Train both (learned positions, RoPE)", icon=":material/play_arrow:", key="learn_blocks_train"):
        jobs = [train_in_lesson(stories(), "training_data.txt", *tiny_configs(positions=positions),
                                what=f" with {positions} positions") for positions in ("learned", "rope")]
        result = st.session_state.learn_blocks = {"jobs": jobs} if all(jobs) else None
    if result is None:
        return None
    rows = [{"positions": job.model.config.positions, "parameters": job.model.num_parameters(),
             "validation loss": job.result.final_val_loss} for job in result["jobs"]]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                 column_config={"validation loss": st.column_config.NumberColumn(format="%.3f")})
    learned, rope = rows
    gap = rope["validation loss"] - learned["validation loss"]
    return (f"With RoPE the validation loss is {rope['validation loss']:.3f}, with learned positions "
            f"{learned['validation loss']:.3f} ({gap:+.3f}). One run each says little: a difference counts only "
            "beyond the spread between seeds, which `python -m cutellm compare-blocks` measures over several "
            "(README, \"Inside the block\").")


# -- 12. Switching parts off ----------------------------------------------------------------------------------
def ablation_lesson(active: state.LoadedModel) -> Outcome:
    st.markdown("Which parts does the model need? Switch one off (its output multiplied by 0, for one pass; the "
                "weights stay) and measure how much the loss on a text rises. The map below does it for each head "
                "alone: purple, the model needs it; green, it did better without it, on this text.")
    text = st.text_input("Text", key="learn_abl_text", max_chars=300)
    try:
        table = ablation.head_importance(active.model, active.tokenizer, text)
    except CuteLLMError as err:
        st.error(str(err), icon=":material/error:")
        return None
    _show(ablation_charts.head_importance_figure(table), "learn_abl_fig")
    heads = table[table["kind"] == "head"]
    options = [f"layer {r.layer} head {r.head}" for r in heads.itertuples()]
    try_this("switch off the head the table marks as most important, and read the loss.")
    chosen = st.selectbox("Head to switch off", ["none", *options], key="learn_abl_head")
    if chosen == "none":
        return None
    row = heads.iloc[options.index(chosen)]
    top = heads.loc[heads["increase"].idxmax()]
    layer, head = int(row["layer"]), int(row["head"])
    effect = ablation.ablation_effect(active.model, active.tokenizer, text, ablation.Part("head", layer - 1, head - 1))
    _show(ablation_charts.ablation_figure(effect), "learn_abl_effect")
    most = (layer, head) == (int(top["layer"]), int(top["head"]))
    return (f"Without layer {layer} head {head} the loss on this text goes from {effect.loss_before:.3f} to "
            f"{effect.loss_after:.3f} ({effect.loss_after - effect.loss_before:+.3f})"
            + (": the head this text needs most." if most else f"; the most needed head here is layer "
               f"{int(top['layer'])} head {int(top['head'])} ({float(top['increase']):+.3f}).") +
            " Explore → Switch parts off does the same for any part and position.")


# -- 13. Watch a rule being learned ---------------------------------------------------------------------------------
COPY_STEPS = 300   # the copy preset's rule appears within 250-500 steps (docs/tasks.md): a few seconds here


def task_lesson(active: state.LoadedModel) -> Outcome:
    task = TASKS["copy"]
    st.markdown("Stories teach a model style, and nobody can say exactly what it learned. A task with exact answers "
                "can: here every line is a problem, `question=answer`, and the answer repeats the question. A model "
                "that has found the rule answers questions it never saw; 10% of all questions are held out of "
                "training to check exactly that.")
    st.code("".join(task_corpus(task, 3)), language=None)
    result = st.session_state.get("learn_task")
    try_this(f"train a small copy model here ({COPY_STEPS} steps, characters as tokens) and compare its held-out "
             "accuracy before and after.")
    if st.button(f"Train a copy model ({COPY_STEPS} steps)", icon=":material/play_arrow:", key="learn_task_train"):
        result = train_copy_model(task)
    if result is None:
        return None
    loaded = st.session_state.session_models.models.get(result["name"])
    if loaded is None:
        return None
    (first_step, first), job = result["first"], result["job"]
    a, b, c = st.columns(3)
    a.metric(f"Held-out accuracy at step {first_step}", f"{first:.0%}")
    b.metric(f"After {COPY_STEPS} steps", f"{result['after']:.0%}")
    c.metric("Training time", f"{result['seconds']:.1f} s")
    st.html(svg_img(live_loss_svg(job.snapshot().history, job.baselines, accuracy=job.snapshot().accuracy),
                    "loss and held-out accuracy by step"))
    example = task_example(task)
    st.markdown(f"**Its attention on a held-out problem**, `{example}`: {task.attention_hint}")
    maps = inspection.attention_maps(loaded.model, loaded.tokenizer, example)
    _show(charts.attention_figure(maps, layer=maps.n_layers - 1), "learn_task_att")
    st.button("Make it the active model", key="learn_task_use", on_click=state.set_active,
              args=(state.session_key(result["name"]),), help="Then Explore and Generate use it.")
    return (f"Held-out accuracy went from {first:.0%} at step {first_step} to {result['after']:.0%} at step "
            f"{COPY_STEPS}: the model answers copy problems it never trained on, so it learned the rule, not the "
            "examples.")


def train_copy_model(task) -> dict | None:
    """A copy model, its held-out accuracy taken at every evaluation (a short run can afford it)."""
    model_config, train_config = task_configs(task, train=dict(max_steps=COPY_STEPS))
    job = train_in_lesson(task_corpus(task), f"task:{task.name}", model_config, train_config, tokenizer_kind="char",
                          task=task.name, samples=SampleSpec(budget=1.0), what=" on the copy task")
    if job is None or not job.snapshot().accuracy:
        return None
    result = {"name": job.name, "job": job, "first": job.snapshot().accuracy[0],
              "after": evaluate_task(job.model, job.tokenizer, task, 100).accuracy, "seconds": job.result.wall_time_s}
    st.session_state.learn_task = result
    return result


# -- 14. From a completer to an assistant ------------------------------------------------------------------------
CHAT_BASE, CHAT_TUNED = "cute_chat_base", "cute_chat"   # the same network: pretrained only, then instruction-tuned


def chat_models() -> tuple[state.LoadedModel, state.LoadedModel, tuple] | None:
    """The two shipped chat models (found among the model files, whatever model is active) and their files' times,
    or None with a notice that says how to make them."""
    paths = {p.stem: p for p in state.model_files()}
    missing = [name for name in (CHAT_BASE, CHAT_TUNED) if name not in paths]
    if missing:
        st.warning(f"This lesson needs the shipped chat models, and {' and '.join(f'`{n}.pth`' for n in missing)} "
                   f"{'is' if len(missing) == 1 else 'are'} missing from models/. Make them with `make run-chat` "
                   "(it pretrains the base, then instruction-tunes it).", icon=":material/warning:")
        return None
    try:
        base, tuned = (state.load_model(state.file_key(paths[name])) for name in (CHAT_BASE, CHAT_TUNED))
        return base, tuned, tuple(paths[name].stat().st_mtime for name in (CHAT_BASE, CHAT_TUNED))
    except (CuteLLMError, OSError) as err:
        st.error(f"The chat models could not be loaded: {err}. Remake them with `make run-chat`.",
                 icon=":material/error:")
        return None


@st.cache_resource(show_spinner=False, max_entries=64)
def chat_replies(keys: tuple[str, str], mtimes: tuple, question: str, _base: state.LoadedModel,
                 _tuned: state.LoadedModel) -> tuple[ChatReply, ChatReply]:
    """Both models' greedy replies to one question (the base given the 3 control tokens, untrained, so it can read
    the template); the same every time, so kept per question and model files."""
    base, base_tokenizer = add_chat_tokens(_base.model, _base.tokenizer)
    asked = [Message("user", question)]
    return (reply(base.requires_grad_(False), base_tokenizer, asked, MAX_REPLY_TOKENS),
            reply(_tuned.model, _tuned.tokenizer, asked, MAX_REPLY_TOKENS))


def _reply_line(name: str, answer: ChatReply) -> str:
    return (f"{name} wrote {len(answer.tokens)} tokens and ended with `<|end|>`" if answer.ended else
            f"{name} wrote {len(answer.tokens)} tokens with no `<|end|>`")


def chat_lesson(active: state.LoadedModel) -> Outcome:
    st.markdown("Pretraining makes a **completer**: given text, it writes more text like what it read. Ask it a "
                "question and it carries on the way its stories would. An assistant is the same network taught one "
                "thing more, a format, by **instruction tuning** on example conversations.")
    st.markdown("The **chat template** writes a conversation as one token sequence: `<|user|>` the question "
                "`<|end|>` `<|assistant|>`. Three control tokens, added to the vocabulary; no typed text becomes "
                "them. The model writes its reply after `<|assistant|>` and stops when it writes `<|end|>`. Below, "
                f"**{CHAT_BASE}** (pretrained only) and **{CHAT_TUNED}** (the same network, then instruction-tuned) "
                f"read the same template, whatever model is active; each may write {MAX_REPLY_TOKENS} tokens.")
    models = chat_models()
    if models is None:
        return None
    base, tuned, mtimes = models
    question = st.text_input("Question", key="learn_chat_q", max_chars=300).strip()
    if not question:
        st.warning("Type a question to ask both models.")
        return None
    try:
        check_message(question)
        with st.spinner("Both models are replying…"):
            answers = chat_replies((base.key, tuned.key), mtimes, question, base, tuned)
    except CuteLLMError as err:
        st.error(str(err), icon=":material/error:")
        return None
    for column, loaded, answer in zip(st.columns(2), (base, tuned), answers):
        column.markdown(f"**{loaded.name}** ({'instruction-tuned' if loaded is tuned else 'pretrained only'})")
        column.html(highlighted([(answer.text, "new")]))
        column.caption(f"{len(answer.tokens)} tokens; " + ("it ended with `<|end|>`: a reply." if answer.ended else
                                                           "no `<|end|>`: still writing when its tokens ran out."))
    unknown = answers[1].context.unknown
    if unknown:
        st.caption(f"Not in the vocabulary, so both read `<unk>` for: {words_list(unknown)}.")
    conversation = template(tuned.tokenizer, [Message("user", question), Message("assistant", answers[1].text)])
    st.markdown(f"**The template, token by token**: your question and {CHAT_TUNED}'s reply, written as a "
                "training conversation is.")
    st.html(conversation_chips_html(tuned.tokenizer, conversation.ids, conversation.roles, conversation.learned))
    st.caption(f"Blue: the user's message; green: the assistant's. Instruction tuning uses a **loss mask**: only the "
               f"{sum(conversation.learned)} outlined tokens (the reply and its `<|end|>`) are targets the loss "
               "counts; the question is read, never learned.")
    try_this("ask both models a question of your own, say about an animal, food or the weather.")
    if question == DEFAULTS["learn_chat_q"]:
        return None
    b, t = answers
    if t.ended and not b.ended:
        why = " Same network, same question: only the tuning on conversations taught it to answer and stop."
    elif not t.ended:
        why = (" Even the tuned model misses the format on a question unlike its conversations: it ran out of its "
               f"{MAX_REPLY_TOKENS} tokens.")
    else:
        why = " The base wrote `<|end|>` too, though its row for it was never trained."
    return f"You asked “{md(question)}”: {_reply_line(base.name, b)}; {_reply_line(tuned.name, t)}.{why}"


TINY_LINK = {"source": "bundled", "preset": "tiny & fast", **TINY.values, "train_for": "steps"}
LESSONS = (
    Lesson("Text becomes tokens", tokens_lesson, "explore", "Explore → Tokens",
           lambda s: {"text": s["learn_tok_text"], "tab": "Tokens"}),
    Lesson("Words as points", embeddings_lesson, "explore", "Explore → Word embeddings",
           lambda s: {"tab": "Word embeddings"}),
    Lesson("Attention, derived", attention_lesson, "explore", "Explore → Attention",
           lambda s: {"text": s["learn_att_text"], "tab": "Attention", "layer": s["learn_att_layer"],
                      "head": s["learn_att_head"]}),
    Lesson("What each layer adds", logit_lens_lesson, "explore", "Explore → Logit lens",
           lambda s: {"text": s["learn_lens_text"], "tab": "Logit lens"}),
    Lesson("From logits to one token", sampling_lesson, "generate", "Generate, step by step",
           lambda s: {"prompt": s["learn_samp_prompt"], "view": "step", "mode": "sampled",
                      "temperature": s["learn_samp_temp"], "top_p": 1.0}),
    Lesson("What the loss means", loss_lesson, "train", "Train, with the tiny preset", lambda s: TINY_LINK),
    Lesson("Overfitting", overfitting_lesson, "runs", "Runs (compare your runs' curves)"),
    Lesson("Why causal", causal_lesson, "train", "Train (its no-mask experiment)", lambda s: TINY_LINK),
    Lesson("Scoring whole sentences", blanks_lesson, "fill_blanks", "Fill the blanks",
           lambda s: {"phrase": s["learn_blank_phrase"]}),
    Lesson("Does a bigger model help?", scale_lesson, "train", "Train, with the tiny preset",
           lambda s: TINY_LINK),
    Lesson("GPT-2 or Llama: one part at a time", blocks_lesson, "train", "Train (Block design)",
           lambda s: {**TINY_LINK, "positions": "rope"}),
    Lesson("Switching parts off", ablation_lesson, "explore", "Explore → Switch parts off",
           lambda s: {"text": s["learn_abl_text"], "tab": "Switch parts off"}),
    Lesson("Watch a rule being learned", task_lesson, "train", "Train → Toy task (copy)",
           lambda s: {"source": "task", "task": "copy"}),
    Lesson("From a completer to an assistant", chat_lesson, "chat", "Chat (base vs tuned side by side)"),
)
DEFAULTS = {"learn_tok_text": "the cat sat on the mat", "learn_emb_word": "cat",
            "learn_att_text": "the cat sat on the mat", "learn_att_layer": 1, "learn_att_head": 1, "learn_att_pos": 2,
            "learn_lens_text": "the cat sat on the mat", "learn_lens_pos": 5,
            "learn_samp_prompt": "the cat sat on the", "learn_samp_temp": 1.0,
            "learn_blank_phrase": "the ___ sat on the mat", "learn_abl_text": "the cat sat on the mat and the dog ran",
            "learn_abl_head": "none", "learn_chat_q": "what color is the sky?"}
