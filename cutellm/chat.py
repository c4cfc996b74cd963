"""Chat: how a text completer becomes an assistant.

Pretraining makes a *document completer*: given text, it writes more text like its corpus. An assistant is the same
network taught one more thing, a format: a conversation is a list of messages, each with a `role` ("user" or
"assistant") and its `content`, and the *chat template* writes it as one token sequence with control tokens

    <|user|> what color is the sky? <|end|> <|assistant|> the sky is blue. <|end|>

Asking the model = writing the conversation so far, then `<|assistant|>`, and letting it continue until it writes
`<|end|>`. Supervised fine-tuning (SFT) teaches that on example conversations, with a *loss mask*: only the assistant's
tokens and its `<|end|>` are targets the loss counts; the user's words are read, never learned (they are the
question, not what the model should say).

The three control tokens are appended to any vocabulary (word, char or BPE: `Tokenizer.with_chat_tokens`), so the base
model gets three new rows in its embedding table (`add_chat_tokens`). No text ever encodes to them: the template puts
their ids in directly, so "<|end|>" typed in a message stays plain text.

Data files are JSON lines: `{"messages": [{"role": "user", "content": ...}, {"role": "assistant", ...}]}` to learn
from, plus `"accept": [words]` on a question-only line to evaluate with (`evaluate_chat`).
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Sequence

import torch

from .config import TrainConfig
from .data import Dataset, decode_corpus_bytes
from .errors import CorpusError, PromptError
from .inference import MAX_PROMPT_CHARS, GeneratedToken, check_max_new_tokens, stream_from_ids
from .model import CuteLLM
from .sampling import SamplingSettings
from .tokenizer import ASSISTANT, CHAT_TOKENS, END, USER, Tokenizer

ROLES = ("user", "assistant")
ROLE_TOKEN = {"user": USER, "assistant": ASSISTANT}
MAX_REPLY_TOKENS = 40          # a reply's budget when evaluating: it must end with <|end|> within it
# How SFT trains unless told otherwise (TrainConfig fields): a few epochs over the conversations at a lower rate than
# pretraining, so the model learns the format without forgetting what it read. Chosen on the validation loss of the
# conversations' own held-out tenth, never on the evaluation questions.
SFT_RECIPE = dict(batch_size=16, epochs=8, max_steps=None, learning_rate=3e-3, warmup_steps=20)
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


class ChatDataError(CorpusError):
    """A conversations file that cannot be used; the message names the line."""


@dataclass(frozen=True)
class Message:
    role: str       # "user" or "assistant"
    content: str


@dataclass(frozen=True)
class Conversation:
    messages: tuple[Message, ...]
    line: int = 0                       # where it was in its file (1-based), for error messages
    accept: tuple[str, ...] = ()        # evaluation lines: words that make a reply correct


# -- reading files --------------------------------------------------------------------------------------------------
def parse_conversations(text: str, name: str = "the file", *, evaluation: bool = False) -> list[Conversation]:
    """JSON lines -> conversations, refusing anything unusable with a message that names the line.

    Training conversations start with the user, alternate, and end with the assistant's answer. Evaluation lines
    (`evaluation=True`) end with the user's question and carry `accept`, a list of words."""
    conversations = []
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"{name}, line {n}"
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as err:
            raise ChatDataError(f"{where} is not valid JSON ({err.msg} at column {err.colno})") from None
        messages = data.get("messages") if isinstance(data, dict) else None
        if not isinstance(messages, list) or not messages:
            raise ChatDataError(f'{where}: expected {{"messages": [{{"role": "user", "content": ...}}, ...]}}')
        parsed = tuple(_message(m, k, where) for k, m in enumerate(messages, start=1))
        last = "user" if evaluation else "assistant"
        for k, m in enumerate(parsed):
            expected = ROLES[k % 2]
            if m.role != expected:
                raise ChatDataError(f"{where}: message {k + 1} is the {m.role}'s; a conversation starts with the "
                                    "user and then alternates user, assistant")
        if parsed[-1].role != last:
            raise ChatDataError(f"{where}: the last message must be the {last}'s "
                                + ("(the question to answer)" if evaluation else "(the answer to learn)"))
        accept: tuple[str, ...] = ()
        if evaluation:
            words = data.get("accept")
            if not isinstance(words, list) or not words or not all(isinstance(w, str) and w.strip() for w in words):
                raise ChatDataError(f'{where}: "accept" must be a list of words, e.g. ["blue"]')
            accept = tuple(w.strip().lower() for w in words)
        conversations.append(Conversation(parsed, n, accept))
    if not conversations:
        raise ChatDataError(f"{name} has no conversation (one JSON object per line, e.g. "
                            '{"messages": [{"role": "user", "content": "hello"}, '
                            '{"role": "assistant", "content": "hello!"}]})')
    return conversations


def _message(m: object, k: int, where: str) -> Message:
    if not isinstance(m, dict) or not isinstance(m.get("content"), str):
        raise ChatDataError(f'{where}: message {k} must be {{"role": ..., "content": "text"}}')
    role = m.get("role")
    if role not in ROLES:
        raise ChatDataError(f"{where}: message {k} has the role {role!r}; the roles are 'user' and 'assistant'")
    if not m["content"].strip():
        raise ChatDataError(f"{where}: message {k} ({role}) is empty")
    return Message(role, m["content"].strip())


def bundled_conversations(folder: str | Path) -> list[str]:
    """The conversation files in `folder` to learn from (its .jsonl files, test sets `*_eval` left out), by name."""
    return sorted(p.name for p in Path(folder).glob("*.jsonl") if not p.stem.endswith("_eval"))


def read_conversations(source: str | Path | bytes, name: str | None = None, *, evaluation: bool = False
                       ) -> list[Conversation]:
    """A .jsonl file (a path, or an upload's bytes) -> conversations; ChatDataError for a non-UTF-8 or bad file."""
    if isinstance(source, bytes):
        data, name = source, name or "the uploaded file"
    else:
        path = Path(source)
        name = name or f"'{path}'"
        if not path.is_file():
            raise ChatDataError(f"{name} does not exist")
        data = path.read_bytes()
    try:
        text = decode_corpus_bytes(data, name)
    except CorpusError as err:
        raise ChatDataError(str(err)) from None
    return parse_conversations(text, name, evaluation=evaluation)


def messages_text(text: str) -> str:
    """The messages of a conversations file as plain text, one per line (no JSON): what the vocabulary must cover."""
    return "\n".join(m.content for c in parse_conversations(text) for m in c.messages)


# -- the template ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Templated:
    """A conversation as the model reads it."""

    ids: list[int]
    learned: list[bool]     # per token: a target the SFT loss counts (the assistant's words and its <|end|>)
    roles: list[str]        # per token: whose message it belongs to ("user" / "assistant"), headers included


def template(tokenizer: Tokenizer, messages: Sequence[Message], *, generation_prompt: bool = False) -> Templated:
    """`<|role|> content <|end|>` per message, then `<|assistant|>` when `generation_prompt` (asking for a reply).
    The control tokens' ids are placed here, never encoded from text."""
    ids: list[int] = []
    learned: list[bool] = []
    roles: list[str] = []
    end = tokenizer.chat_id(END)
    for m in messages:
        content = tokenizer.encode(m.content)
        piece = [tokenizer.chat_id(ROLE_TOKEN[m.role]), *content, end]
        ids += piece
        # The header is given at inference (we write it), so it is never learned; the answer and its end are.
        learned += [False] + [m.role == "assistant"] * (len(content) + 1)
        roles += [m.role] * len(piece)
    if generation_prompt:
        ids.append(tokenizer.chat_id(ASSISTANT))
        learned.append(False)
        roles.append("assistant")
    return Templated(ids, learned, roles)


def add_chat_tokens(model: CuteLLM, tokenizer: Tokenizer) -> tuple[CuteLLM, Tokenizer]:
    """A copy of the model and tokenizer with the three control tokens added (the originals are unchanged).

    Their embedding rows (and LM-head rows, when untied) start as the mean of the existing rows: a neutral start
    that SFT moves. A vocabulary that has them already is copied as it is."""
    model = copy.deepcopy(model).cpu()
    if tokenizer.has_chat_tokens:
        return model, tokenizer
    chat_tokenizer = tokenizer.with_chat_tokens()
    grown = CuteLLM(replace(model.config, vocab_size=chat_tokenizer.vocab_size))
    state = model.state_dict()
    for key in ("tok_emb.weight", "lm_head.weight"):
        old = state[key]                                                   # (vocab, d_model)
        state[key] = torch.cat([old, old.mean(dim=0, keepdim=True).expand(len(CHAT_TOKENS), -1)])
    grown.load_state_dict(state)
    return grown.eval(), chat_tokenizer


# -- SFT data -------------------------------------------------------------------------------------------------------
def chat_dataset(conversations: Sequence[Conversation], tokenizer: Tokenizer, block_size: int, *,
                 val_fraction: float = 0.1, name: str = "the file") -> Dataset:
    """One window per conversation, padded to block_size + 1 with <pad>, and its loss mask: `train_mask[i, t]` says
    whether target t of window i (token t + 1) is learned. The last `val_fraction` of the conversations validate."""
    rows, masks, too_long = [], [], []
    for c in conversations:
        t = template(tokenizer, c.messages)
        if len(t.ids) > block_size + 1:
            too_long.append((c.line, len(t.ids)))
            continue
        pad = block_size + 1 - len(t.ids)
        rows.append(t.ids + [tokenizer.pad_id] * pad)
        masks.append(t.learned[1:] + [False] * pad)    # target t is token t + 1
    if too_long:
        line, n = too_long[0]
        more = f" ({len(too_long) - 1} more are too long as well)" if len(too_long) > 1 else ""
        raise ChatDataError(f"{name}, line {line}: the conversation is {n} tokens long and the model reads "
                            f"{block_size + 1} at most{more}. Shorten it, or instruction-tune a model with a longer "
                            "context (the chat preset reads 64 tokens)")
    windows = torch.tensor(rows, dtype=torch.long)                       # (conversations, block_size + 1)
    mask = torch.tensor(masks, dtype=torch.bool)                         # (conversations, block_size)
    n_val = int(math.floor(len(rows) * val_fraction))
    n_train = len(rows) - n_val
    if n_train < 1:
        raise ChatDataError(f"{name} leaves no conversation to train on")
    return Dataset(ids=windows.reshape(-1), train=windows[:n_train], val=windows[n_train:], block_size=block_size,
                   n_train_tokens=n_train * (block_size + 1), train_mask=mask[:n_train], val_mask=mask[n_train:])


def prepare_sft(text: str, name: str, base: CuteLLM, tokenizer: Tokenizer, train_config: TrainConfig
                ) -> tuple[CuteLLM, Tokenizer, Dataset]:
    """JSON-lines conversations and a base model -> a trainable copy with the chat tokens, its tokenizer, and the
    conversations' windows with their loss masks (the base is never changed)."""
    conversations = parse_conversations(text, name)
    model, chat_tokenizer = add_chat_tokens(base, tokenizer)
    dataset = chat_dataset(conversations, chat_tokenizer, model.config.block_size,
                           val_fraction=train_config.val_fraction, name=name)
    model.requires_grad_(True)
    return model, chat_tokenizer, dataset


# -- talking to the model -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChatContext:
    """What the model reads before it replies: the newest messages that fit its context window."""

    ids: list[int]
    roles: list[str]
    dropped_messages: int = 0   # older messages left out: the window could not hold them
    cropped_tokens: int = 0     # tokens cut from the start of the newest message when even it alone did not fit
    unknown: list[str] = field(default_factory=list)   # words of the newest message outside the vocabulary


def check_message(text: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise PromptError("the message is empty: type a question")
    if len(text) > MAX_PROMPT_CHARS:
        raise PromptError(f"the message has {len(text):,} characters; the limit is {MAX_PROMPT_CHARS:,}")
    return text.strip()


def chat_context(tokenizer: Tokenizer, messages: Sequence[Message], block_size: int, reply_room: int | None = None
                 ) -> ChatContext:
    """The templated conversation with the reply prompt, cut to leave `reply_room` tokens (default: a quarter of the
    window) for the reply: whole older messages go first, then the start of the newest message."""
    if not messages or messages[-1].role != "user":
        raise PromptError("a reply needs a conversation that ends with the user's message")
    room = max(1, block_size - (block_size // 4 if reply_room is None else reply_room))
    keep = list(messages)
    while len(keep) > 1 and len(template(tokenizer, keep, generation_prompt=True).ids) > room:
        keep = keep[2:] if len(keep) > 2 else keep[1:]   # a whole exchange (question and answer) at a time
    t = template(tokenizer, keep, generation_prompt=True)
    cropped = max(0, len(t.ids) - room)
    ids, roles = t.ids, t.roles
    if cropped:   # the question alone is too long: keep its header and its last words
        ids, roles = ids[:1] + ids[1 + cropped:], roles[:1] + roles[1 + cropped:]
    return ChatContext(ids, roles, len(messages) - len(keep), cropped, tokenizer.unknown_words(messages[-1].content))


@dataclass(frozen=True)
class ChatReply:
    text: str
    tokens: list[GeneratedToken]       # the reply's tokens, the final <|end|> included when it came
    ended: bool                        # it wrote <|end|> within the budget
    context: ChatContext


def stream_reply(model: CuteLLM, tokenizer: Tokenizer, messages: Sequence[Message], max_new_tokens: int = 40, *,
                 sampling: SamplingSettings | None = None, context: ChatContext | None = None
                 ) -> Iterator[GeneratedToken]:
    """The assistant's reply, one token at a time, until it writes <|end|> (yielded last) or the budget runs out.
    It never writes <|user|> or <|assistant|>: speaking for the user is not a reply."""
    check_max_new_tokens(max_new_tokens)
    context = context or chat_context(tokenizer, messages, model.config.block_size)
    end = tokenizer.chat_id(END)
    ban = [tokenizer.chat_id(USER), tokenizer.chat_id(ASSISTANT)]
    for token in stream_from_ids(model, tokenizer, context.ids, max_new_tokens, sampling=sampling, ban=ban):
        yield token
        if token.token_id == end:
            return


def reply_text(tokenizer: Tokenizer, tokens: Sequence[GeneratedToken]) -> str:
    end = tokenizer.chat_id(END)
    return tokenizer.decode([t.token_id for t in tokens if t.token_id != end])


def reply(model: CuteLLM, tokenizer: Tokenizer, messages: Sequence[Message], max_new_tokens: int = 40, *,
          sampling: SamplingSettings | None = None) -> ChatReply:
    """The whole reply (greedy unless `sampling`), with what the model read."""
    context = chat_context(tokenizer, messages, model.config.block_size)
    tokens = list(stream_reply(model, tokenizer, messages, max_new_tokens, sampling=sampling, context=context))
    ended = bool(tokens) and tokens[-1].token_id == tokenizer.chat_id(END)
    return ChatReply(reply_text(tokenizer, tokens), tokens, ended, context)


# -- the score ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChatAnswer:
    question: str
    reply: str
    accept: tuple[str, ...]
    correct: bool       # a word of the reply is an accepted word
    ended: bool         # the reply ended with <|end|> within the budget


@dataclass(frozen=True)
class ChatScore:
    answers: list[ChatAnswer]

    @property
    def accuracy(self) -> float:
        return sum(a.correct for a in self.answers) / len(self.answers)

    @property
    def format_rate(self) -> float:
        return sum(a.ended for a in self.answers) / len(self.answers)

    @property
    def misses(self) -> list[ChatAnswer]:
        return [a for a in self.answers if not a.correct]


def is_correct(reply: str, accept: Sequence[str]) -> bool:
    """Whether a word of `reply` (lower-cased, whole words) is one of `accept`."""
    return bool(set(_WORD.findall(reply.lower())) & set(accept))


def evaluate_chat(model: CuteLLM, tokenizer: Tokenizer, items: Sequence[Conversation],
                  max_new_tokens: int = MAX_REPLY_TOKENS) -> ChatScore:
    """Greedy replies to every evaluation question: accuracy (a reply holding an accepted word) and format rate (a
    reply ending with <|end|> within `max_new_tokens`)."""
    answers = []
    for item in items:
        r = reply(model, tokenizer, item.messages, max_new_tokens)
        answers.append(ChatAnswer(item.messages[-1].content, r.text, item.accept, is_correct(r.text, item.accept),
                                  r.ended))
    return ChatScore(answers)


def score_report(score: ChatScore, model_name: str = "", file_name: str = "", shown_misses: int = 10) -> str:
    lines = [f"{model_name or 'model'} on {file_name or 'the questions'}: accuracy {score.accuracy:.1%} "
             f"({sum(a.correct for a in score.answers)} of {len(score.answers)} replies hold an accepted word), "
             f"format {score.format_rate:.1%} (replies that end with {END})"]
    for a in score.misses[:shown_misses]:
        lines.append(f"  {a.question!r} -> {a.reply!r}  (accepts {', '.join(a.accept)})")
    if len(score.misses) > shown_misses:
        lines.append(f"  ... and {len(score.misses) - shown_misses} more misses")
    return "\n".join(lines)


def score_json(score: ChatScore, model_name: str = "", file_name: str = "") -> dict:
    return {"model": model_name, "file": file_name, "questions": len(score.answers), "accuracy": score.accuracy,
            "format_rate": score.format_rate,
            "misses": [{"question": a.question, "reply": a.reply, "accept": list(a.accept), "ended": a.ended}
                       for a in score.misses]}
