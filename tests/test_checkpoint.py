import os
from pathlib import Path

import pytest
import torch

from cutellm import load_checkpoint, read_metadata, save_checkpoint
from cutellm import checkpoint as ckpt


def test_round_trip_gives_identical_logits_and_metadata(tiny, tmp_path):
    model, tok, _, result = tiny
    path = save_checkpoint(tmp_path / "m.pth", model, tok, {"corpus": "tiny", **result.summary()})
    loaded, tok2, meta = load_checkpoint(path, with_meta=True)
    idx = torch.tensor([tok.encode("the cat sat on the")])
    model.eval()
    torch.testing.assert_close(loaded(idx)[0], model(idx)[0], atol=0, rtol=0)
    assert tok2.id_to_token == tok.id_to_token and loaded.config == model.config
    assert meta["corpus"] == "tiny" and meta["steps"] == 300 and "saved_at" in meta
    assert meta["final_val_loss"] == pytest.approx(result.final_val_loss)
    assert read_metadata(path)["model_config"]["d_model"] == model.config.d_model
    assert not loaded.training
    assert loaded.lm_head.weight is loaded.tok_emb.weight  # tying survives the round trip
    assert oct(path.stat().st_mode & 0o777) == "0o644"


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ.get('CUTE_EVIL_MARKER', '/tmp/cute_evil_marker')}",))


def test_failed_save_leaves_the_previous_file_intact(tiny, tmp_path, monkeypatch):
    model, tok, _, _ = tiny
    path = save_checkpoint(tmp_path / "m.pth", model, tok, {"version": "old"})
    before = path.read_bytes()

    def crash_midway(obj, f):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(ckpt.torch, "save", crash_midway)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(path, model, tok, {"version": "new"})
    assert path.read_bytes() == before
    assert load_checkpoint(path, with_meta=True)[2]["version"] == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.pth"]  # no temp file left behind


def test_metadata_must_be_plain(tiny, tmp_path):
    model, tok, _, _ = tiny
    path = save_checkpoint(tmp_path / "m.pth", model, tok, {"when": object()})  # stringified, still loads
    assert isinstance(read_metadata(path)["when"], str)


def test_kill_9_during_save_leaves_the_previous_file_loadable(tmp_path):
    """A real crash: a process saving in a loop is SIGKILLed while a temp file is half written."""
    import signal
    import subprocess
    import sys
    import time

    target = tmp_path / "model.pth"
    script = f"""
import torch
from cutellm import CuteLLM, ModelConfig, SimpleWordTokenizer, save_checkpoint
tok = SimpleWordTokenizer.from_text("the cat sat on the mat", 10)
model = CuteLLM(ModelConfig(vocab_size=tok.vocab_size, d_model=512, n_heads=8, n_layers=4, block_size=16))
save_checkpoint({str(target)!r}, model, tok, {{"round": 0}})
print("first save done", flush=True)
i = 0
while True:
    i += 1
    save_checkpoint({str(target)!r}, model, tok, {{"round": i}})
"""
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(repo)})
    try:
        assert proc.stdout.readline().strip() == "first save done"
        deadline = time.time() + 30
        while not list(tmp_path.glob(".model.pth.*.tmp")) and time.time() < deadline:
            time.sleep(0.001)
        assert list(tmp_path.glob(".model.pth.*.tmp")), "never caught a save in progress"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
    model, tok, meta = load_checkpoint(target, with_meta=True)  # the last complete save, never a torn one
    assert isinstance(meta["round"], int)
