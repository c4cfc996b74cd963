import os
import pickle
from pathlib import Path

import pytest
import torch

from cutellm import CheckpointError, load_checkpoint, read_metadata, save_checkpoint
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


def test_truncated_file_raises_clear_error(tiny, tmp_path):
    model, tok, _, _ = tiny
    path = save_checkpoint(tmp_path / "m.pth", model, tok)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"'.*m\.pth' cannot be loaded: the file is truncated or corrupt"):
        load_checkpoint(path)


@pytest.mark.parametrize("content", [os.urandom(4096), b"", b"hello world\n"])
def test_garbage_file_raises_clear_error(tmp_path, content):
    path = tmp_path / "junk.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="junk.pth"):
        load_checkpoint(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match="folder"):
        load_checkpoint(tmp_path)


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ.get('CUTE_EVIL_MARKER', '/tmp/cute_evil_marker')}",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("CUTE_EVIL_MARKER", str(marker))
    path = tmp_path / "evil.pth"
    torch.save({"format": "cutegpt-checkpoint", "payload": _Evil()}, path)
    with pytest.raises(CheckpointError, match="refuses"):
        load_checkpoint(path)
    assert not marker.exists()
    with open(tmp_path / "plain.pkl", "wb") as f:
        pickle.dump(_Evil(), f)
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "plain.pkl")
    assert not marker.exists()


def test_foreign_torch_file_and_mismatched_vocabulary(tiny, tmp_path):
    model, tok, _, _ = tiny
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a CuteGPT checkpoint"):
        load_checkpoint(tmp_path / "other.pth")
    payload = ckpt.checkpoint_payload(model, tok)
    payload["tokenizer"]["tokens"] = payload["tokenizer"]["tokens"][:-1]
    payload["tokenizer"]["counts"] = payload["tokenizer"]["counts"][:-1]
    torch.save(payload, tmp_path / "vocab.pth")
    with pytest.raises(CheckpointError, match="tokenizer has"):
        load_checkpoint(tmp_path / "vocab.pth")
    payload = ckpt.checkpoint_payload(model, tok)
    payload["state_dict"]["tok_emb.weight"] = torch.zeros(5, model.config.d_model)
    torch.save(payload, tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(tmp_path / "shape.pth")


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
