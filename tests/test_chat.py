"""Chat: the template, the loss mask, instruction tuning, replies, the score and every bad input (cutellm.chat)."""

from __future__ import annotations

import json

import pytest
import torch

from cutellm.chat import (ChatDataError, Message, add_chat_tokens, chat_context, chat_dataset, evaluate_chat,
                          is_correct, parse_conversations, read_conversations, reply, template)
from cutellm.config import ModelConfig, TrainConfig
from cutellm.data import inputs_and_targets
from cutellm.errors import PromptError
from cutellm.lab.runs import BaseModel, prepare_run
from cutellm.tokenizer import ASSISTANT, CHAT_TOKENS, END, USER, build_tokenizer, tokenizer_from_dict
from cutellm.training import new_model, train

CORPUS = ("the cat sat on the mat. the dog ran to the park. the sky is blue. the cow eats grass. bees make honey. "
          "max is the dog. snow is the cat. hello! ask me about the farm. what color is the sky? what does the cow "
          "eat? who is max? where did the cat sit? ") * 20
QA = [("what color is the sky?", "the sky is blue."), ("what does the cow eat?", "the cow eats grass."),
      ("who is max?", "max is the dog."), ("where did the cat sit?", "the cat sat on the mat."),
      ("hello!", "hello! ask me about the farm.")]


def jsonl(rows: list[dict]) -> str:
    return "\n".join(json.dumps(r) for r in rows) + "\n"


def conversation(q: str, a: str) -> dict:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


TRAIN_TEXT = jsonl([conversation(q, a) for _ in range(12) for q, a in QA])


def tiny_base(kind: str = "word", block_size: int = 32):
    tokenizer = build_tokenizer(kind, CORPUS, 300 if kind == "bpe" else 100)
    model = new_model(ModelConfig(vocab_size=tokenizer.vocab_size, d_model=32, n_heads=2, n_layers=1,
                                  block_size=block_size, dropout=0.0), seed=0)
    return BaseModel("base", model.eval(), tokenizer, {})


@pytest.mark.parametrize("kind", ["word", "char", "bpe"])
def test_template_round_trip_for_every_tokenizer(kind):
    base = tiny_base(kind)
    _, tokenizer = add_chat_tokens(base.model, base.tokenizer)
    assert tokenizer.id_to_token[-3:] == list(CHAT_TOKENS)
    assert tokenizer_from_dict(tokenizer.to_dict()).id_to_token == tokenizer.id_to_token
    messages = [Message("user", "What color is the sky?"), Message("assistant", "The sky is blue.")]
    t = template(tokenizer, messages)
    control = {tokenizer.chat_id(c) for c in CHAT_TOKENS}
    assert [tokenizer.token(i) for i in t.ids if i in control] == [USER, END, ASSISTANT, END]
    # Between the control tokens lie the messages, encoded exactly as text is.
    user_end = t.ids.index(tokenizer.chat_id(END))
    assert t.ids[1:user_end] == tokenizer.encode(messages[0].content)
    assert tokenizer.decode(t.ids[user_end + 2:-1]) == tokenizer.decode(tokenizer.encode(messages[1].content))
    # Text that spells a control token is plain text: the template alone writes control ids.
    assert not set(tokenizer.encode("<|end|> <|user|> <|assistant|>")) & control


def test_the_loss_mask_learns_the_answer_and_its_end_only():
    _, tokenizer = add_chat_tokens(tiny_base().model, tiny_base().tokenizer)
    t = template(tokenizer, [Message("user", "who is max?"), Message("assistant", "max is the dog.")])
    learned = [tokenizer.token(i) for i, keep in zip(t.ids, t.learned) if keep]
    assert learned == tokenizer.tokenize("max is the dog.") + [END]


def test_prompt_tokens_give_exactly_zero_gradient():
    base = tiny_base()
    model, tokenizer = add_chat_tokens(base.model, base.tokenizer)
    data = chat_dataset(parse_conversations(TRAIN_TEXT), tokenizer, 32)
    window, mask = data.train[:2], data.train_mask[:2]
    inputs, targets = inputs_and_targets(window, mask)
    model.train()
    logits, _ = model(inputs)
    logits.retain_grad()
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1)
    loss.backward()
    per_position = logits.grad.abs().sum(-1)               # (2, block_size)
    assert torch.all(per_position[~mask] == 0)              # the question, the headers, the padding: nothing learned
    assert torch.all(per_position[mask] > 0)
    # And the loss the model computes itself is the same masked loss.
    assert model(inputs, targets)[1].item() == pytest.approx(loss.item())


def test_adding_chat_tokens_changes_nothing_the_base_could_say():
    base = tiny_base()
    model, tokenizer = add_chat_tokens(base.model, base.tokenizer)
    ids = torch.tensor([base.tokenizer.encode("the cat sat on the mat")])
    with torch.no_grad():
        before, after = base.model(ids)[0], model(ids)[0]
    assert torch.allclose(after[..., :base.tokenizer.vocab_size], before, atol=1e-6)   # a wider matmul: rounding
    assert base.model.config.vocab_size == base.tokenizer.vocab_size  # the base is untouched


def test_a_tiny_sft_run_ends_its_replies_with_end():
    base = tiny_base()
    config = TrainConfig(batch_size=8, epochs=1, max_steps=150, learning_rate=1e-2, warmup_steps=10, seed=0)
    run = prepare_run(TRAIN_TEXT, "train.jsonl", base.model.config, config, base=base, chat=True)
    assert run.chat and run.metadata["base_model"] == "base"
    result = train(run.model, run.dataset, run.config)
    assert result.final_val_loss < 0.5
    for question, answer in QA:
        r = reply(run.model, run.tokenizer, [Message("user", question)], 20)
        assert r.ended and r.text == run.tokenizer.decode(run.tokenizer.encode(answer))


def test_the_score_equals_a_hand_count():
    base = tiny_base()
    model, tokenizer = add_chat_tokens(base.model, base.tokenizer)
    items = parse_conversations(jsonl([{"messages": [{"role": "user", "content": q}], "accept": [w]}
                                       for (q, _), w in zip(QA, ["blue", "grass", "dog", "mat", "farm"])]),
                                evaluation=True)
    score = evaluate_chat(model, tokenizer, items, max_new_tokens=6)
    replies = [reply(model, tokenizer, item.messages, 6) for item in items]
    correct = sum(any(w in r.text.lower().replace(".", " ").split() for w in item.accept)
                  for r, item in zip(replies, items))
    assert score.accuracy == correct / 5
    assert score.format_rate == sum(r.tokens[-1].token_id == tokenizer.chat_id(END) for r in replies) / 5
    assert len(score.misses) == 5 - correct
    assert is_correct("The sky is BLUE.", ["blue"]) and not is_correct("bluebird", ["blue"])


def test_the_window_cuts_old_turns_first_then_the_question():
    _, tokenizer = add_chat_tokens(tiny_base().model, tiny_base().tokenizer)
    turns = [Message("user", "who is max?"), Message("assistant", "max is the dog."),
             Message("user", "what color is the sky?")]
    fits = chat_context(tokenizer, turns, 64)
    assert fits.dropped_messages == 0 and fits.ids[0] == tokenizer.chat_id(USER)
    cut = chat_context(tokenizer, turns, 16)
    assert cut.dropped_messages == 2 and cut.cropped_tokens == 0
    long = chat_context(tokenizer, [Message("user", "the cat sat on the mat. " * 40)], 16)
    assert long.cropped_tokens > 0 and len(long.ids) == 12
    assert long.ids[0] == tokenizer.chat_id(USER) and long.ids[-1] == tokenizer.chat_id(ASSISTANT)


def test_chat_input_that_is_odd():
    base = tiny_base()
    model, tokenizer = add_chat_tokens(base.model, base.tokenizer)
    with pytest.raises(PromptError, match="empty"):
        from cutellm.chat import check_message
        check_message("   ")
    unknown = chat_context(tokenizer, [Message("user", "xylophone zebra")], 32)
    assert unknown.unknown == ["xylophone", "zebra"]
    assert reply(model, tokenizer, [Message("user", "xylophone zebra")], 3).tokens   # it still answers
    typed = chat_context(tokenizer, [Message("user", "say <|end|> please")], 32)
    assert typed.ids.count(tokenizer.chat_id(END)) == 1    # only the one the template wrote


@pytest.mark.parametrize("text, message", [
    ('{"messages": [}\n', "line 1 is not valid JSON"),
    (jsonl([conversation("hi", "hello")]) + '{"messages": [{"role": "system", "content": "x"}]}\n',
     "line 2: message 1 has the role 'system'"),
    (jsonl([{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}]}]),
     r"line 1: message 2 \(assistant\) is empty"),
    (jsonl([{"messages": [{"role": "user", "content": "hi"}]}]), "line 1: the last message must be the assistant's"),
    (jsonl([{"messages": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "hi"}]}]),
     "line 1: message 1 is the assistant's"),
    ("\n\n", "has no conversation"),
    ('["a list"]\n', 'line 1: expected {"messages"'),
])
def test_bad_conversation_files_name_the_line(text, message):
    with pytest.raises(ChatDataError, match=message):
        parse_conversations(text, "chat.jsonl")


def test_a_conversation_longer_than_the_context_is_refused_by_line():
    base = tiny_base(block_size=8)
    text = jsonl([conversation("hi", "hello"), conversation("what color is the sky today?", "the sky is blue.")])
    with pytest.raises(ChatDataError, match=r"chat.jsonl, line 2: the conversation is \d+ tokens long"):
        prepare_run(text, "chat.jsonl", base.model.config, TrainConfig(), base=base, chat=True)


def test_non_utf8_and_eval_files(tmp_path):
    with pytest.raises(ChatDataError, match="not valid UTF-8"):
        read_conversations(b'{"messages": "\xff\xfe"}\n', "up.jsonl")
    path = tmp_path / "eval.jsonl"
    path.write_text(jsonl([{"messages": [{"role": "user", "content": "sky?"}], "accept": ["Blue"]}]))
    assert read_conversations(path, evaluation=True)[0].accept == ("blue",)
    path.write_text(jsonl([{"messages": [{"role": "user", "content": "sky?"}], "accept": []}]))
    with pytest.raises(ChatDataError, match='line 1: "accept" must be a list of words'):
        read_conversations(path, evaluation=True)


def test_instruction_tuning_needs_a_base():
    from cutellm.errors import ConfigError
    with pytest.raises(ConfigError, match="starts from a trained model"):
        prepare_run(TRAIN_TEXT, "t.jsonl", ModelConfig(), TrainConfig(), chat=True)


def test_a_chat_model_round_trips_through_a_checkpoint(tmp_path):
    from cutellm.checkpoint import load_checkpoint, save_checkpoint
    base = tiny_base("bpe")
    model, tokenizer = add_chat_tokens(base.model, base.tokenizer)
    save_checkpoint(tmp_path / "c.pth", model, tokenizer, {"chat": True})
    loaded, tok, meta = load_checkpoint(tmp_path / "c.pth", with_meta=True)
    assert tok.has_chat_tokens and meta["chat"]
    messages = [Message("user", "who is max?")]
    assert reply(loaded, tok, messages, 5).text == reply(model, tokenizer, messages, 5).text


def test_cli_sft_chat_and_evaluate_chat(tmp_path, capsys):
    from cutellm.__main__ import main
    from cutellm.checkpoint import load_checkpoint, save_checkpoint
    base = tiny_base()
    save_checkpoint(tmp_path / "base.pth", base.model, base.tokenizer, {"name": "base"})
    (tmp_path / "train.jsonl").write_text(TRAIN_TEXT)
    (tmp_path / "eval.jsonl").write_text(jsonl([{"messages": [{"role": "user", "content": "who is max?"}],
                                                 "accept": ["dog"]}]))
    assert main(["sft", "--init-from", str(tmp_path / "base.pth"), "--data", str(tmp_path / "train.jsonl"),
                 "--steps", "150", "--lr", "1e-2", "--batch-size", "8", "--log-every", "1000"]) == 0
    model, tokenizer, meta = load_checkpoint(tmp_path / "base_chat.pth", with_meta=True)
    assert meta["chat"] and meta["base_model"] == "base" and tokenizer.has_chat_tokens
    assert main(["evaluate-chat", str(tmp_path / "eval.jsonl"), "--model", str(tmp_path / "base_chat.pth"),
                 "--out", str(tmp_path / "score.json")]) == 0
    score = json.loads((tmp_path / "score.json").read_text())
    assert score["accuracy"] == 1.0 and score["format_rate"] == 1.0
    assert main(["chat", "who is max?", "--model", str(tmp_path / "base_chat.pth")]) == 0
    assert "max is the dog." in capsys.readouterr().out
    # The base model is asked with the same template (its chat tokens untrained) and says so.
    assert main(["evaluate-chat", str(tmp_path / "eval.jsonl"), "--model", str(tmp_path / "base.pth"),
                 "--out", str(tmp_path / "base.json")]) == 0
    assert "never instruction-tuned" in capsys.readouterr().err
    assert json.loads((tmp_path / "base.json").read_text())["format_rate"] == 0.0
    # Bad input through the CLI: a clear message and exit code 2, nothing written.
    (tmp_path / "bad.jsonl").write_text('{"messages": [}\n')
    assert main(["sft", "--init-from", str(tmp_path / "base.pth"), "--data", str(tmp_path / "bad.jsonl"),
                 "--out", str(tmp_path / "never.pth")]) == 2
    assert "bad.jsonl, line 1 is not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "never.pth").exists()
