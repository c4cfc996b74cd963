"""Fine-tuning the active model, comparing runs, the training timeline and the causality experiment (AppTest)."""

from __future__ import annotations

from .conftest import button, no_exception, open_page, train_tiny_run

NEW_TOPIC = ("the rocket flew to the moon. the astronaut saw the stars. the rocket is fast and the moon is far. "
             "the astronaut ate bread on the moon. ") * 12


def test_fine_tune_the_shipped_model_on_new_text(app):
    app.session_state["tr_source"] = "Paste"
    app.session_state["tr_paste"] = NEW_TOPIC
    open_page(app, "train")
    app.radio(key="tr_start").set_value("The active model (fine-tune)").run()
    no_exception(app)
    # the shape is locked and the <unk> rate is measured under the shipped model's vocabulary
    assert not [n for n in app.number_input if n.key in ("tr_d_model", "tr_layers", "tr_vocab")]
    assert any("cute_llm" in i.value and "tokenizer and shape" in i.value for i in app.info)
    assert any("outside cute_llm's vocabulary" in w.value for w in app.warning)  # rocket, astronaut...
    unk = {m.label: m.value for m in app.metric}["<unk> rate"]
    assert float(unk.rstrip("%")) > 10

    job = train_tiny_run(app, steps=40, tr_start="The active model (fine-tune)")
    assert job.snapshot().status == "finished"
    assert job.model.config.to_dict() == app.session_state["active_loaded"].model.config.to_dict()
    meta = app.session_state["session_models"].models["run-1"].meta
    assert meta["base_model"] == "cute_llm" and meta["previous_runs"][0]["corpus"] == "training_data.txt"
    assert any("Fine-tuned from" in c.value for c in app.caption)

    button(app, "Use this model").click().run()
    open_page(app, "generate")
    app.radio(key="gen_mode").set_value("Greedy").run()
    app.text_area(key="gen_prompt").set_value("the moon is").run()
    button(app, "Generate").click().run()
    no_exception(app)
    assert app.session_state["gen_result"]["model"] == "session:run-1"
    open_page(app, "fill_blanks")
    app.text_input(key="fill_phrase").set_value("the ___ flew to the moon").run()
    button(app, "Fill the blanks").click().run()
    no_exception(app)
    # The fine-tuned model has learnt the new pattern with the words it knows ("moon", "flew"): the top candidate
    # is a word of the new text.
    best = app.session_state["fill_result"]["completion"].blanks[0].best.word
    assert best in NEW_TOPIC.split(), best


def test_runs_view_compares_runs(app):
    train_tiny_run(app, steps=20)
    train_tiny_run(app, steps=30, tr_lr=0.002)
    open_page(app, "runs")
    no_exception(app)
    chosen = app.multiselect(key="runs_chosen")
    assert chosen.value == ["run-1 (this session)", "run-2 (this session)"]
    assert app.dataframe, "the comparison table is shown"
    assert any("differ" in c.value for c in app.caption)
    chosen.select("cute_llm (shipped)").run()
    no_exception(app)
    app.toggle(key="runs_earlier").set_value(True).run()
    no_exception(app)


def test_training_timeline_slider(app):
    train_tiny_run(app, steps=40)
    button(app, "Use this model").click().run()
    open_page(app, "explore")
    slider = app.select_slider(key="ex_step")
    assert slider.options[0].startswith("0") and len(slider.options) == 8
    for tab in ("Word embeddings", "Next-token probabilities"):
        app.session_state["ex_tab"] = tab
        for step in (0, 23, 40):
            app.select_slider(key="ex_step").set_value(step).run()
            no_exception(app)
            assert not app.error, [e.value for e in app.error]
    assert any("at step 40" in c.value for c in app.caption)


def test_the_causality_experiment(app):
    job = train_tiny_run(app, steps=60, tr_noncausal=True)
    assert job.model.config.causal is False
    assert any("without the causal mask" in w.value for w in app.warning)
    button(app, "Use this model").click().run()
    open_page(app, "generate")
    button(app, "Generate").click().run()
    no_exception(app)
    assert app.session_state["gen_result"]["tokens"]
