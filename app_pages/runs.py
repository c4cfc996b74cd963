"""Runs: compare training runs — loss curves overlaid, settings and results side by side, differences highlighted."""

from dataclasses import replace

import streamlit as st

from cutellm import CheckpointError
from cutellm.views.charts import runs_figure
from cutellm.lab.runs import Run, differing_columns, distinguishing_labels, runs_table
from ui import state

st.title("Runs")
st.caption("Every run trained in this tab, and every saved model, keeps its loss curve and settings. Pick a few to "
           "see which choices made a difference.")


def available_runs(include_earlier: bool) -> dict[str, Run]:
    runs: dict[str, Run] = {}
    for key in state.model_choices():
        try:
            loaded = state.load_model(key)
        except (CheckpointError, KeyError):
            continue  # a broken file is reported by the sidebar when chosen; here it is simply not a run
        label = f"{loaded.name} ({'this session' if loaded.source == 'session' else loaded.source})"
        if include_earlier:
            for i, earlier in enumerate(loaded.meta.get("previous_runs", []), start=1):
                runs[f"{label} · earlier run {i}"] = Run(f"{loaded.name} · earlier {i}", earlier,
                                                         loaded.model.config.to_dict())
        runs[label] = Run(loaded.name, loaded.meta, loaded.model.config.to_dict())
    return runs


include_earlier = st.toggle("Include the earlier runs of fine-tuned models", key="runs_earlier",
                            help="A fine-tuned model remembers the runs it grew from.")
runs = available_runs(include_earlier)
session_labels = [label for label in runs if "(this session)" in label]
default = (session_labels or list(runs))[-5:]
previous = [label for label in st.session_state.get("runs_chosen", default) if label in runs]
st.session_state.runs_chosen = previous or default
chosen = st.multiselect("Runs to compare", list(runs), key="runs_chosen",
                        help="Models trained in this tab and saved models (models/*.pth).")
if not chosen:
    st.info("Choose at least one run. Train a model on the Train page to add your own.", icon=":material/info:")
    st.stop()

selected = [runs[label] for label in chosen]
tokenizers = {run.tokenizer for run in selected}
mixed = len(tokenizers) > 1
bpc = st.toggle("Plot bits per character", value=mixed, key=f"runs_bpc_{mixed}",
                help="A loss per token depends on what a token is, so it only compares runs with the same tokenizer. "
                     "Bits per character measures every model on the same text.")
if mixed:
    st.caption(f"These runs use different tokenizers ({', '.join(sorted(str(t) for t in tokenizers))}): a word token "
               "stands for about 4 characters and a char token for one, so guessing the next word is a harder task "
               "than guessing the next letter and per-token losses are not comparable. Per character of the same "
               "text they are: loss × tokens ÷ characters ÷ ln 2.", help=None)
if bpc:
    missing = [run.name for run in selected if not run.curve_in_bits_per_char]
    if missing:
        st.info(f"Not shown in bits per character (saved before CuteGPT recorded characters per token): "
                f"{', '.join(missing)}.", icon=":material/info:")
# The legend names each curve with what sets its run apart (e.g. "norm rmsnorm, seed 2").
labelled = [replace(run, name=label) for run, label in zip(selected, distinguishing_labels(selected))]
st.plotly_chart(runs_figure(labelled, bits_per_char=bpc), key="runs_chart", config={"displaylogo": False})

table = runs_table(selected)
different = differing_columns(table)


def highlight(column):
    style = "background-color: rgba(232, 67, 147, 0.14); font-weight: 600"
    return [style if column.name in different else "" for _ in column]


st.dataframe(table.style.apply(highlight, axis=0).format(precision=4, na_rep="–"), hide_index=True,
             width="stretch")
if different:
    st.caption("Highlighted: the columns that differ between these runs. Click a column header to sort.")
elif len(selected) > 1:
    st.caption("These runs have the same settings and results.")
