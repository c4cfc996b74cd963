"""The Train page as a lab, through AppTest: the preview, uploads, renaming and deleting saved models."""

from __future__ import annotations

import re
import shutil

from cutellm.checkpoint import checkpoint_bytes, save_checkpoint
from cutellm.lab.model_files import SHIPPED_DIR

from .conftest import button, live_view, no_exception, open_page


def _metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_the_preview_updates_when_the_layers_change(app):
    open_page(app, "train")
    app.selectbox(key="tr_preset").set_value("tiny & fast").run()
    one_layer = int(_metric(app, "Parameters").replace(",", ""))
    assert _metric(app, "Steps") == "300" and _metric(app, "Tokens per step") == f"{16 * 16:,}"
    app.number_input(key="tr_layers").set_value(3).run()
    no_exception(app)
    three_layers = int(_metric(app, "Parameters").replace(",", ""))
    # Each block adds its attention (4 d^2, no biases, LayerNorm gain d) and MLP (8 d^2, LayerNorm gain d), d = 64.
    d = 64
    assert three_layers - one_layer == 2 * (12 * d * d + 2 * d)
    assert any("attention" in c.value and "MLP" in c.value for c in app.caption)
    assert _metric(app, "Memory (about)").endswith("MB")


def test_the_architecture_picture_is_drawn_only_while_its_expander_is_open(app):
    open_page(app, "train")
    assert "Architecture picture" in [e.label for e in app.expander]
    assert not app.get("plotly_chart")   # closed: not redrawn, unseen, at every change of a setting
    app.session_state["tr_architecture_open"] = True   # what a click on the expander sets
    app.run()
    no_exception(app)
    assert len(app.get("plotly_chart")) == 1


def test_an_uploaded_checkpoint_becomes_the_active_model(app, tiny):
    model, tokenizer, _, _ = tiny
    data = checkpoint_bytes(model, tokenizer, {"corpus": "tiny text", "steps": 300})
    app.file_uploader(key="mp_upload").set_value(("tiny-model.pth", data, "application/octet-stream")).run()
    no_exception(app)
    assert app.session_state["active_model"] == "upload:tiny-model"
    assert "tiny-model (uploaded)" in app.sidebar.selectbox(key="active_model").options
    assert any(f"{model.num_parameters():,}" in c.value for c in app.sidebar.caption)
    assert any("now the active model" in s.value for s in app.sidebar.success)
    open_page(app, "generate")   # the other pages use it
    no_exception(app)
    assert any("tiny text" in c.value for c in app.sidebar.caption)


def test_a_random_bytes_upload_shows_an_error_and_changes_nothing(app):
    before = app.session_state["active_model"]
    app.file_uploader(key="mp_upload").set_value(("junk.pth", bytes(range(256)) * 40, "application/octet-stream"))
    app.run()
    no_exception(app)
    assert any("cannot be loaded" in e.value and "junk.pth" in e.value for e in app.sidebar.error)
    assert app.session_state["active_model"] == before
    assert not app.session_state["session_models"].uploads


def test_delete_asks_first_and_never_touches_the_shipped_models(app, models_dir, tiny):
    model, tokenizer, _, _ = tiny
    mine = save_checkpoint(models_dir / "mine.pth", model, tokenizer, {})
    shutil.copy(SHIPPED_DIR / "cute_llm.pth", models_dir / "cute_llm.pth")   # a file with a shipped model's name
    app.run()
    assert app.selectbox(key="mp_target").options == ["mine"]   # the shipped models are not offered
    button(app, "Delete").click().run()
    assert mine.exists(), "deleted without asking"
    assert any("for good" in w.value for w in app.sidebar.warning)
    button(app, "Cancel").click().run()
    assert mine.exists()
    button(app, "Delete").click().run()
    button(app, "Yes, delete").click().run()
    no_exception(app)
    assert not mine.exists() and (models_dir / "cute_llm.pth").exists()
    assert (SHIPPED_DIR / "cute_llm.pth").exists()
    assert any("Deleted mine.pth" in s.value for s in app.sidebar.success)


def test_rename_asks_first_and_keeps_the_active_model(app, models_dir, tiny):
    model, tokenizer, _, _ = tiny
    mine = save_checkpoint(models_dir / "mine.pth", model, tokenizer, {})
    app.run()
    app.sidebar.selectbox(key="active_model").set_value(f"file:{mine.resolve()}").run()
    app.text_input(key="mp_new_name").set_value("cute_llm").run()
    button(app, "Rename").click().run()
    button(app, "Yes, rename").click().run()
    assert mine.exists() and any("shipped model" in e.value for e in app.sidebar.error)   # reserved name refused
    app.text_input(key="mp_new_name").set_value("yours").run()
    button(app, "Rename").click().run()
    assert mine.exists()
    button(app, "Yes, rename").click().run()
    no_exception(app)
    assert not mine.exists() and (models_dir / "yours.pth").exists()
    assert app.session_state["active_model"] == f"file:{(models_dir / 'yours.pth').resolve()}"


def test_live_samples_and_pause_resume_on_the_train_page(app):
    import time

    from .conftest import start_tiny_run

    app.run()
    open_page(app, "train")
    app.text_input(key="tr_sample_prompt").set_value("the dog ran to the").run()
    job = start_tiny_run(app, steps=20000)
    try:
        deadline = time.monotonic() + 60
        while len(job.snapshot().samples) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        button(app, "Pause").click().run()
        no_exception(app)
        assert job.paused
        held = job.snapshot().latest.step
        time.sleep(0.5)
        app.run()
        view = live_view(app)
        assert job.snapshot().latest.step == held and "paused" in view
        lines = re.findall(r'<div class="sample">(.*?)</div>', view)
        assert len(lines) >= 2 and all("the dog ran to the" in line for line in lines)
        steps = [int(re.match(r"step ([\d,]+):", line).group(1).replace(",", "")) for line in lines]
        assert steps == sorted(steps, reverse=True)   # newest first
        assert "times better than guessing by word frequency" in view or "uniform guess" in view
        button(app, "Resume").click().run()
        assert not job.paused
        deadline = time.monotonic() + 30
        while job.snapshot().latest.step == held and time.monotonic() < deadline:
            time.sleep(0.05)
        assert job.snapshot().latest.step > held
    finally:
        job.stop()
        job.join(60)
