"""The Train page through AppTest: presets, corpus sources, a short run in the background, save, use, busy."""

from __future__ import annotations

import gc
import time

import pytest

from cutellm import load_checkpoint
from cutellm.lab.jobs import training_in_progress

from .conftest import button, finish_run, live_view, no_exception, open_page, start_tiny_run


def test_presets_fill_the_settings(app):
    open_page(app, "train")
    app.selectbox(key="tr_preset").set_value("bigger").run()
    assert app.number_input(key="tr_layers").value == 4
    app.selectbox(key="tr_preset").set_value("tiny & fast").run()
    assert app.number_input(key="tr_layers").value == 1
    assert app.radio(key="tr_mode").value == "Steps"
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Words"] and metrics["<unk> rate"].endswith("%")


def test_the_llama_preset_switches_the_block_and_trains_it(app):
    open_page(app, "train")
    app.selectbox(key="tr_preset").set_value("Llama-style").run()
    assert (app.selectbox(key="tr_positions").value, app.radio(key="tr_norm").value, app.radio(key="tr_mlp").value,
            app.checkbox(key="tr_tie").value) == ("rope", "rmsnorm", "swiglu", True)
    assert any("Llama-style block" in m.help for m in app.metric if m.label == "Parameters")
    # A block option on top of the tiny preset reaches the model that trains.
    job = finish_run(app, start_tiny_run(app, steps=10, tr_positions="rope", tr_tie=False))
    config = job.model.config
    assert (config.positions, config.norm, config.tie_weights) == ("rope", "layernorm", False)
    assert job.snapshot().status == "finished"


def test_settings_survive_a_visit_to_another_page_during_a_run(app):
    job = start_tiny_run(app, steps=300, tr_seed=7)
    for page in ("generate", "explore", "train"):
        open_page(app, page)
    assert app.selectbox(key="tr_preset").value == "tiny & fast"
    assert (app.number_input(key="tr_layers").value, app.number_input(key="tr_steps").value,
            app.number_input(key="tr_seed").value) == (1, 300, 7)
    job.stop()
    finish_run(app, job)


def test_only_corpora_are_offered_not_test_sets(app):
    open_page(app, "train")
    options = app.selectbox(key="tr_bundled").options
    assert "training_data.txt" in options and "blanks_eval.txt" not in options


def test_every_page_setting_has_its_widget(app):
    from cutellm.options import OPTIONS

    open_page(app, "train")
    for mode in ("Epochs", "Steps"):
        app.radio(key="tr_mode").set_value(mode).run()
        drawn = {w.key: w.label for kind in ("number_input", "selectbox", "radio", "checkbox")
                 for w in getattr(app, kind)}
        for o in OPTIONS:
            hidden = {"Epochs": "max_steps", "Steps": "epochs"}[mode]   # "Train for" shows one of the two
            if o.widget is not None and o.name != hidden:
                assert drawn.get(o.widget.key) == o.widget.label, o.name
    assert app.number_input(key="tr_steps").max == 50_000   # the playground's cap, not the core's open range
    assert (app.number_input(key="tr_lr").min, app.number_input(key="tr_lr").max) == (1e-6, 10.0)


def test_tiny_training_produces_a_model_that_generate_uses(app, models_dir):
    job = start_tiny_run(app, steps=30)
    finish_run(app, job)
    assert job.snapshot().status == "finished" and job.result.steps == 30
    assert any("Finished 30 steps" in s.value for s in app.success)
    assert "run-1 (this session)" in app.sidebar.selectbox[0].options
    button(app, "Use this model").click().run()
    assert app.session_state["active_model"] == "session:run-1"

    open_page(app, "generate")
    no_exception(app)
    assert any("82,368" in c.value for c in app.sidebar.caption)  # the tiny model is the active one
    app.radio(key="gen_mode").set_value("Greedy").run()
    button(app, "Generate").click().run()
    no_exception(app)
    assert app.session_state["gen_result"]["model"] == "session:run-1"
    assert app.session_state["gen_result"]["tokens"]

    # Save it: bad names are refused, a good one writes a loadable checkpoint.
    open_page(app, "train")
    assert any("Not saved yet" in w.value and "reloading the tab loses it" in w.value for w in app.warning)
    for bad in ["../../etc/x", "a/b", "has space", "cute_llm"]:
        app.text_input(key="tr_save_name").set_value(bad).run()
        assert app.error, f"{bad!r} should be refused"
        assert button(app, "Save").disabled
    app.text_input(key="tr_save_name").set_value("tiny-1").run()
    button(app, "Save").click().run()
    no_exception(app)
    app.run()
    assert not any("Not saved yet" in w.value for w in app.warning)
    assert any("Saved as `models/tiny-1.pth`" in c.value for c in app.caption)
    model, tokenizer, meta = load_checkpoint(models_dir / "tiny-1.pth", with_meta=True)
    assert meta["steps"] == 30 and meta["corpus"] == "training_data.txt"
    assert not list(models_dir.glob("*.tmp"))
    # Saving again under the same name asks first.
    app.run()
    assert button(app, "Save").disabled
    app.checkbox(key="tr_overwrite").check().run()
    assert not button(app, "Save").disabled
    # the saved model is offered in the sidebar
    open_page(app, "home")
    assert "tiny-1 (saved)" in app.sidebar.selectbox[0].options


def test_stop_keeps_the_weights(app):
    job = start_tiny_run(app, steps=20000)
    # Stop once it has trained a little: a stop before the first step would (rightly) keep 0 steps.
    deadline = time.monotonic() + 60
    while not job.snapshot().history and time.monotonic() < deadline:
        time.sleep(0.05)
    job.stop()
    finish_run(app, job)
    snap = job.snapshot()
    assert snap.status == "stopped" and 0 < job.result.steps < 20000
    assert any("weights trained so far are kept" in i.value for i in app.info)
    assert "run-1" in app.session_state["session_models"].models


def test_a_stopped_run_continues_from_the_page(app):
    job = start_tiny_run(app, steps=300)
    deadline = time.monotonic() + 60
    while len(job.snapshot().history) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    job.stop()
    finish_run(app, job)
    stopped_at = job.result.steps
    assert 0 < stopped_at < 300
    button(app, "Continue training").click().run()
    no_exception(app)
    again = app.session_state["train_job"]
    assert again is not job
    finish_run(app, again)
    assert again.snapshot().status == "finished"
    assert [m.step for m in again.snapshot().history] == list(range(1, 301))   # one curve, no restart
    assert any("Finished" in s.value for s in app.success) and not [b for b in app.button
                                                                   if b.label == "Continue training"]


def test_pasted_corpus_and_errors(app):
    open_page(app, "train")
    app.radio(key="tr_source").set_value("Paste").run()
    assert button(app, "Train").disabled  # nothing pasted yet
    app.text_area(key="tr_paste").set_value("the cat sat.").run()
    assert any("too short" in e.value for e in app.error)
    app.text_area(key="tr_paste").set_value("the cat sat on the mat. the dog ran to the park. " * 40).run()
    assert not app.error
    app.number_input(key="tr_d_model").set_value(130).run()
    assert any("divisible" in e.value for e in app.error)
    assert button(app, "Train").disabled


def test_a_second_session_queues_sees_its_place_and_can_leave(app, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from cutellm.lab.jobs import QUEUE

    monkeypatch.setattr(QUEUE, "slots", 1)
    job = start_tiny_run(app, steps=20000)
    try:
        assert training_in_progress()
        other = AppTest.from_file(str(app._script_path), default_timeout=90)
        other.run()
        other.switch_page("app_pages/train.py").run()
        assert any("Every training slot of this server is in use (1 at a time)" in i.value for i in other.info)
        other.selectbox(key="tr_preset").set_value("tiny & fast").run()
        button(other, "Train").click().run()
        no_exception(other)
        queued = other.session_state["train_job"]
        assert queued.queued and queued.snapshot().place == 1
        assert any("number 1** in the queue" in i.value for i in other.info)
        assert button(other, "Train").disabled            # one run per tab, queued or training
        button(other, "Leave the queue").click().run()
        assert queued.snapshot().status == "left the queue"
        assert any("left the queue; nothing was trained" in i.value for i in other.info)
        assert not [h for h in other.get("html") if 'id="live-view"' in h.proto.body], "no progress to show"
        assert not button(other, "Train").disabled
    finally:
        job.stop()
        job.join(60)


def test_hardware_settings_reach_the_training_job(app, monkeypatch):
    open_page(app, "train")
    # Only what this machine has is offered; 'auto' says what it resolves to.
    from cutellm.devices import available_devices

    device = app.selectbox(key="tr_device")
    assert device.options == [f"auto ({'cuda' if 'cuda' in available_devices() else 'cpu'})", *available_devices()[1:]]
    from cutellm import devices

    for native, shown in ((True, "auto (bf16)"), (False, "auto (fp32)")):   # bf16 where the CPU multiplies it natively
        monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda native=native: native)
        app.selectbox(key="tr_device").set_value("cpu").run()
        assert app.selectbox(key="tr_precision").options[0] == shown
    app.selectbox(key="tr_preset").set_value("tiny & fast").run()
    app.number_input(key="tr_steps").set_value(12).run()
    app.selectbox(key="tr_device").set_value("cpu").run()
    app.selectbox(key="tr_precision").set_value("bf16").run()
    app.number_input(key="tr_accum").set_value(2).run()
    button(app, "Train").click().run()
    job = app.session_state["train_job"]
    finish_run(app, job)
    config = job.config
    assert (config.device, config.precision, config.grad_accum_steps, config.compile) == ("cpu", "bf16", 2, False)
    assert job.result.precision == "bf16" and job.result.global_batch_size == 2 * config.batch_size
    assert job.result.steps == 12
    stats = live_view(app)
    assert '<div class="live-stat" data-label="Step"><div class="label">Step</div><div class="value">12</div>' in stats
    assert 'aria-valuenow="100"' in stats
    assert any("on cpu (bf16)" in s.value for s in app.success)
    # The hardware choice is not part of a preset, and survives a change of preset.
    app.selectbox(key="tr_preset").set_value("default").run()
    assert app.number_input(key="tr_accum").value == 2


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without a GPU")
def test_a_device_this_machine_lacks_is_refused_before_training(app, monkeypatch):
    import cutellm.devices

    # As if a GPU were listed when the page was drawn and gone by the click: the page re-reads the list each run.
    monkeypatch.setattr(cutellm.devices, "available_devices", lambda: ["auto", "cpu", "cuda"])
    open_page(app, "train")
    app.selectbox(key="tr_preset").set_value("tiny & fast").run()
    app.selectbox(key="tr_device").set_value("cuda").run()
    button(app, "Train").click().run()
    no_exception(app)
    assert any("no CUDA GPU" in e.value for e in app.error)
    assert app.session_state["train_job"] is None and not training_in_progress()


def test_the_corpus_is_tokenized_once_for_its_statistics_and_its_run(app, monkeypatch):
    from cutellm.tokenizer import BPETokenizer

    builds = []
    learn = BPETokenizer.from_text.__func__

    def counted(cls, text, vocab_size=1000):
        builds.append(vocab_size)
        return learn(cls, text, vocab_size)

    monkeypatch.setattr(BPETokenizer, "from_text", classmethod(counted))
    job = start_tiny_run(app, steps=5, tr_tokenizer="bpe", tr_vocab=300)
    finish_run(app, job)
    # One set of BPE merges, learned when the statistics were shown; the reruns and the run itself reuse it.
    assert builds == [300]
    assert job.snapshot().status == "finished" and job.tokenizer.kind == "bpe"
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Vocabulary"] == f"{job.tokenizer.vocab_size:,}" == f"{job.model.config.vocab_size:,}"


def test_a_toy_task_trains_with_its_preset_and_shows_held_out_accuracy(app):
    open_page(app, "train")
    app.radio(key="tr_source").set_value("Toy task").run()
    app.selectbox(key="tr_task").set_value("reverse").run()
    no_exception(app)
    # The task's preset: characters as tokens (locked), rotary positions, its steps.
    assert app.radio(key="tr_tokenizer").value == "char" and app.radio(key="tr_tokenizer").disabled
    assert app.selectbox(key="tr_positions").value == "rope"
    assert (app.radio(key="tr_mode").value, app.number_input(key="tr_steps").value) == ("Steps", 2000)
    assert any("=" in c.value and "\n" in c.value for c in app.code)       # example problems: question=answer
    # A context too short for a problem is refused with the numbers, before Train.
    app.number_input(key="tr_block").set_value(8).run()
    assert any("use a block size of at least 15" in e.value for e in app.error)
    assert button(app, "Train").disabled
    app.number_input(key="tr_block").set_value(32).run()
    app.number_input(key="tr_steps").set_value(40).run()
    button(app, "Train").click().run()
    job = finish_run(app, app.session_state["train_job"])
    assert job.task == "reverse" and job.tokenizer.kind == "char"
    assert job.run.metadata["corpus"] == "task:reverse"
    snap = job.snapshot()
    assert snap.accuracy and snap.accuracy[-1][0] == 40 and 0 <= snap.last_accuracy <= 1
    view = live_view(app)
    assert "Held-out accuracy" in view and "Held-out problems" in view and "Val perplexity" not in view


def test_a_toy_task_is_not_offered_for_fine_tuning(app):
    open_page(app, "train")
    app.radio(key="tr_source").set_value("Toy task").run()
    app.radio(key="tr_start").set_value("The active model (fine-tune)").run()
    no_exception(app)
    assert any("A toy task trains a new model" in w.value for w in app.warning)
    assert button(app, "Train").disabled


def test_instruction_tuning_the_active_model_from_the_page(app):
    """Start from the active model, instruction-tune it on the bundled conversations: the recipe fills in, one example
    shows the tokens it learns, and the run's live samples are answers; the tuned model has the chat tokens."""
    from cutellm.lab.model_files import SHIPPED_DIR
    from ui.state import file_key

    app.session_state["active_model"] = file_key(SHIPPED_DIR / "cute_chat_base.pth")
    open_page(app, "train")
    app.radio(key="tr_start").set_value("The active model (instruction-tune it)").run()
    no_exception(app)
    assert (app.number_input(key="tr_batch").value, app.number_input(key="tr_lr").value) == (16, 3e-3)
    strip = next(h.proto.body for h in app.get("html") if "cute-chips" in h.proto.body)
    assert "learned" in strip and "&lt;|assistant|&gt;" in strip
    assert {m.label: m.value for m in app.metric}["Conversations"] == "867"
    app.radio(key="tr_mode").set_value("Steps").run()
    app.number_input(key="tr_steps").set_value(20).run()
    button(app, "Train").click().run()
    job = finish_run(app, app.session_state["train_job"])
    assert job.run.chat and job.tokenizer.has_chat_tokens and job.run.metadata["base_model"] == "cute_chat_base"
    assert job.snapshot().samples[-1].continuation.startswith("what color is the sky? →")


def test_a_bad_conversations_file_is_refused_by_line(app):
    """An uploaded .jsonl with a broken line: the page names the line and offers no Train."""
    from cutellm.lab.model_files import SHIPPED_DIR
    from ui.state import file_key

    app.session_state["active_model"] = file_key(SHIPPED_DIR / "cute_chat_base.pth")
    open_page(app, "train")
    app.radio(key="tr_start").set_value("The active model (instruction-tune it)").run()
    app.radio(key="tr_chat_source").set_value("Upload").run()
    app.session_state["tr_chat_text"] = '{"messages": [{"role": "user", "content": "hi"}]}\n{"messages": [}\n'
    app.session_state["tr_chat_name"] = "mine.jsonl"
    app.run()
    assert any("mine.jsonl, line 1: the last message must be the assistant's" in e.value for e in app.error)
    assert button(app, "Train").disabled


def test_the_server_memory_cap_lets_go_of_the_oldest_unsaved_model(app, monkeypatch):
    """Over CUTEGPT_MODEL_MEMORY_MB, a tab's oldest unsaved model goes first, with a notice; the new one stays."""
    from ui import state

    finish_run(app, start_tiny_run(app, steps=10))
    models = app.session_state["session_models"].models
    assert list(models) == ["run-1"]
    one = state.model_bytes(models["run-1"])
    gc.collect()   # models of earlier tests' tabs that are already gone must not leave the count after the cap is set
    # Room for everything kept now (other tabs of this test process included) and half a model more.
    monkeypatch.setenv("CUTEGPT_MODEL_MEMORY_MB", str((state.kept_bytes() + one / 2) / 2**20))
    button(app, "Train").click().run()
    finish_run(app, app.session_state["train_job"])
    assert list(app.session_state["session_models"].models) == ["run-2"]
    assert any("let go of model run-1 (the oldest not saved)" in w.value for w in app.sidebar.warning)
