"""Command line: python -m cutellm train | sft | chat | generate | complete | evaluate-blanks | evaluate-chat |
evaluate-task | inspect | visualize | bench | compare-blocks (each with --help)."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from dataclasses import replace
from pathlib import Path

from . import __version__
from .completion import DEFAULT_BEAM
from .options import OPTION, OPTIONS, Option, field_type, options_of
from .settings import SECTIONS, load_settings, setup_logging
from .errors import CuteLLMError
from .presets import CLI_NAMES
from .tasks import TASKS

log = logging.getLogger("cutellm")

DEFAULT_CORPUS = "data/training_data.txt"
DEFAULT_MODEL = "models/cute_llm.pth"
DEFAULT_CHAT_DATA = "data/chat_train.jsonl"
DEFAULT_CHAT_EVAL = "data/chat_eval.jsonl"
DEFAULT_CHAT_MODEL = "models/cute_chat.pth"


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model on a text corpus and save it",
                       description="Train a CuteLLM. Unset options take their value from .env, then the defaults.")
    p.add_argument("--corpus", default=DEFAULT_CORPUS, help="UTF-8 text file (default: %(default)s)")
    p.add_argument("--out", help=f"checkpoint to write (default: {DEFAULT_MODEL}, or the --resume file)")
    add_option_flags(p)  # --tokenizer, --vocab-size, ... --eval-interval: one per Option with a flag
    p.add_argument("--log-every", type=int, default=100, help="print progress every N steps (default: %(default)s)")
    p.add_argument("--init-from", metavar="PATH", help="fine-tune this checkpoint on --corpus instead of starting "
                   "fresh (keeps its tokenizer and shape; the shape options are then ignored)")
    p.add_argument("--resume", metavar="PATH", help="continue a run that was stopped (Ctrl-C or --stop-at-step) "
                   "exactly where it was: same weights, optimizer state, learning-rate schedule and batch order; "
                   "reads --corpus (it must be the same text) and the run's own settings, and writes to PATH "
                   "unless --out is given")
    p.add_argument("--stop-at-step", type=int, metavar="N", help="stop after N steps and save a checkpoint that "
                   "--resume continues (Ctrl-C does the same at the next step)")
    p.add_argument("--task", choices=tuple(TASKS),
                   help="train on a generated toy task instead of --corpus, with its preset (flags given override it; "
                        "python -m cutellm evaluate-task TASK scores the model)")
    p.add_argument("--non-causal", action="store_true", help="EXPERIMENT: train without the causal mask, so the "
                   "model may look at the words it should predict (shows why causality matters)")
    p.add_argument("--preset", choices=tuple(CLI_NAMES), help="start from one of the Train page's presets "
                   "(the model's shape, tokenizer and recipe); flags given override it")


def _add_sft(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sft", help="instruction-tune a trained model on conversations (a chat model)",
                       description="Supervised fine-tuning: teach a trained model the chat format on conversations "
                       "(JSON lines). The chat tokens <|user|>, <|assistant|>, <|end|> are added to its vocabulary, "
                       "and the loss counts only the assistant's answers. Unset training options take the SFT "
                       "recipe (cutellm.chat.SFT_RECIPE), then .env and the defaults.")
    p.add_argument("--init-from", metavar="BASE", help="the trained model to tune (required unless --resume)")
    p.add_argument("--data", default=DEFAULT_CHAT_DATA, help="conversations, one JSON object per line "
                   "(default: %(default)s)")
    p.add_argument("--out", help="checkpoint to write (default: BASE_chat.pth beside BASE, or the --resume file)")
    add_option_flags(p, options_of("train"))
    p.add_argument("--log-every", type=int, default=50, help="print progress every N steps (default: %(default)s)")
    p.add_argument("--resume", metavar="PATH", help="continue a stopped SFT run exactly where it was (same --data)")
    p.add_argument("--stop-at-step", type=int, metavar="N", help="stop after N steps and save a resumable checkpoint")


def add_option_flags(p: argparse.ArgumentParser, options: tuple[Option, ...] = OPTIONS) -> None:
    """A flag for every Option that has one. Unset flags stay None, so .env and then the defaults apply."""
    for o in options:
        if o.flag is None:
            continue
        kind, _ = field_type(SECTIONS[o.section], o.name)
        if kind is bool:
            # --flag / --no-flag: a setting that is on by default (tie_weights) must be switchable off too.
            p.add_argument(o.flag, dest=o.name, action=argparse.BooleanOptionalAction, default=None, help=o.help)
        elif o.choices:
            p.add_argument(o.flag, dest=o.name, choices=o.choices, help=o.help)
        else:
            p.add_argument(o.flag, dest=o.name, type=kind, help=o.help,
                           metavar=o.metavar or o.flag.lstrip("-").upper().replace("-", "_"))


def option_overrides(args: argparse.Namespace, section: str, options: tuple[Option, ...] = OPTIONS) -> dict:
    """The flags given for `section`'s fields: field name -> value."""
    return {o.name: getattr(args, o.name) for o in options_of(section, options)
            if o.flag is not None and getattr(args, o.name, None) is not None}


def _add_speed_args(p: argparse.ArgumentParser) -> None:
    add_option_flags(p, (OPTION["precision"], OPTION["compile"]))


def _add_model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=DEFAULT_MODEL, help="checkpoint to load (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cutellm", description="CuteGPT: train and play with a tiny GPT.")
    parser.add_argument("--version", action="version", version=f"cutellm {__version__}")
    parser.add_argument("--env-file", default=".env", help="settings file read before the defaults (default: .env)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(sub)

    _add_sft(sub)

    ch = sub.add_parser("chat", help="ask an instruction-tuned model a question",
                        description="Reply to MESSAGE with a chat model (python -m cutellm sft makes one); a model "
                        "that was never instruction-tuned is asked with the same template, untrained chat tokens "
                        "and all.")
    ch.add_argument("message", help="the user's message")
    ch.add_argument("--model", default=DEFAULT_CHAT_MODEL, help="checkpoint (default: %(default)s)")
    ch.add_argument("-n", "--max-new-tokens", type=int, default=40, help="reply budget in tokens (default: "
                    "%(default)s)")
    ch.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default); >0 samples")
    ch.add_argument("--seed", type=int, help="seed for sampling")
    ch.add_argument("--show-context", action="store_true", help="print the tokens the model reads")

    ec = sub.add_parser("evaluate-chat", help="score a chat model on questions with accepted words",
                        description="Reply greedily to every question of FILE (JSON lines: {\"messages\": [{\"role\": "
                        "\"user\", \"content\": Q}], \"accept\": [words]}); print and write accuracy (replies "
                        "holding an accepted word), format_rate (replies ending with <|end|> within the budget) "
                        "and the misses.")
    ec.add_argument("file", nargs="?", default=DEFAULT_CHAT_EVAL, help="questions (default: %(default)s)")
    ec.add_argument("--model", default=DEFAULT_CHAT_MODEL, help="checkpoint (default: %(default)s)")
    ec.add_argument("--out", help="JSON file to write (default: bench/chat_eval_MODEL.json)")
    ec.add_argument("-n", "--max-new-tokens", type=int, default=None, help="reply budget in tokens (default: "
                    "cutellm.chat.MAX_REPLY_TOKENS)")

    g = sub.add_parser("generate", help="continue a prompt", description="Generate text after a prompt.")
    _add_model_arg(g)
    g.add_argument("prompt", nargs="?", default="the cat sat on the", help="text to continue")
    g.add_argument("-n", "--max-new-tokens", type=int, default=30, help="tokens to generate (default: %(default)s)")
    g.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default); >0 samples")
    g.add_argument("--top-k", type=int, help="sample among the k most likely tokens")
    g.add_argument("--top-p", type=float, help="sample among the most likely tokens covering this probability")
    g.add_argument("--seed", type=int, help="seed for sampling (same seed -> same text)")
    g.add_argument("--no-cache", action="store_true", help="recompute the whole context each step")
    g.add_argument("--probs", action="store_true", help="print each token with its probability")

    c = sub.add_parser("complete", help="fill ___ blanks in a phrase", description="Fill the ___ blanks of a phrase.")
    _add_model_arg(c)
    c.add_argument("phrase", nargs="?", default="the cat sat on the ___", help="phrase with ___ blanks")
    c.add_argument("--top-k", type=int, default=5, help="candidates per blank (default: %(default)s)")
    c.add_argument("--beam", type=int, default=DEFAULT_BEAM, help="fillings kept by the search over several "
                   "blanks (default: %(default)s)")

    e = sub.add_parser("evaluate-blanks", help="score blank filling on a file of phrases",
                       description="Fill the ___ of every phrase in FILE and report top-1 / top-5 accuracy and the "
                       "misses. FILE has one phrase per line, then ' | ' and the accepted answers: groups per blank "
                       "separated by ';', alternatives by ','. Example: 'the cow eats ___ | grass, hay'. Lines "
                       "starting with # are skipped.")
    _add_model_arg(e)
    e.add_argument("file", nargs="?", default="data/blanks_eval.txt", help="phrases and answers (default: "
                   "%(default)s)")
    e.add_argument("--out", default="bench/blanks_eval.json", help="JSON file to write (default: %(default)s)")
    e.add_argument("--beam", type=int, default=DEFAULT_BEAM, help="fillings kept by the search over several "
                   "blanks (default: %(default)s)")

    t = sub.add_parser("evaluate-task", help="exact accuracy of a task model on held-out problems",
                       description="Solve held-out problems of TASK greedily with a model trained by `train --task "
                       "TASK`; print the accuracy and the misses.")
    t.add_argument("task", help=f"one of {', '.join(TASKS)}")
    t.add_argument("--model", help="checkpoint (default: models/TASK.pth)")
    t.add_argument("-n", "--problems", type=int, default=200, help="held-out problems (default: %(default)s)")

    i = sub.add_parser("inspect", help="describe a saved model", description="Show a checkpoint's config, size, "
                       "training metadata and what it predicts after a prompt.")
    _add_model_arg(i)
    i.add_argument("--prompt", default="the cat sat on the", help="prompt for the next-token table")
    i.add_argument("--top-k", type=int, default=10, help="next-token candidates to show")

    v = sub.add_parser("visualize", help="export every Explore figure to one HTML page",
                       description="Write OUT/model_visualizations.html: architecture, next-token bars, prediction "
                       "heatmap, embedding maps, attention and logit lens, with plotly.js inlined so it opens "
                       "offline. PNG snapshots go to OUT/images/ when kaleido is installed.")
    _add_model_arg(v)
    v.add_argument("--out", default="docs/", help="folder to write into (default: %(default)s)")
    v.add_argument("--text", help="input text for the per-position figures (default: the example sentence, "
                   "cutellm.inspection.DEFAULT_TEXT)")
    v.add_argument("--highlight", help="word to highlight on the embedding maps (default: 'cat' if known)")
    v.add_argument("--no-images", action="store_true", help="skip the PNG snapshots")

    b = sub.add_parser("bench", help="training/generation benchmark against nanoGPT's CPU recipe",
                       description="Train with nanoGPT's shakespeare_char CPU recipe (char level, 4 layers, 4 heads, "
                       "width 128, context 64, batch 12, 2000 iterations), sample 500 tokens with and without the "
                       "KV cache, print the figures beside nanoGPT's and write them as JSON.")
    b.add_argument("--corpus", help="character-level text file (default: ../shared/corpora/tinyshakespeare.txt "
                   "next to the repository)")
    b.add_argument("--quick", action="store_true", help="200 iterations instead of 2000 (a smoke test)")
    b.add_argument("--steps", type=int, help="iterations (overrides --quick)")
    b.add_argument("--out", default="bench/results.json", help="JSON file to write (default: %(default)s)")
    b.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to train and sample")
    _add_speed_args(b)
    b.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")

    k = sub.add_parser("compare-blocks", help="GPT-2 vs Llama blocks, and one option at a time, over several seeds",
                       description="Train the GPT-2 block, the Llama block (RoPE + RMSNorm + SwiGLU) and each option "
                       "alone on the same corpus with the same recipe and steps, once per seed; print validation "
                       "loss and bits per character with their spread over the seeds, and write them as JSON.")
    k.add_argument("--corpus", default=DEFAULT_CORPUS, help="UTF-8 text file (default: %(default)s)")
    k.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="one run per seed (default: 1 2 3)")
    k.add_argument("--steps", type=int, help="optimiser steps per run (default: the recipe's epochs)")
    k.add_argument("--out", default="bench/compare_blocks.json", help="JSON file to write (default: %(default)s)")
    return parser


def cmd_train(args: argparse.Namespace, settings) -> int:
    """Train and save. Under torchrun every process runs this: all train, the main one (rank 0) logs and saves."""
    from .fast import distributed

    if args.preset:
        from .presets import CLI_NAMES, presets

        settings = presets(settings)[CLI_NAMES[args.preset]].applied_to(settings)
    settings = replace(settings, **option_overrides(args, "settings"))  # --tokenizer
    model_over = option_overrides(args, "model")
    train_over = option_overrides(args, "train")
    model_config = replace(settings.model, **model_over)
    train_config = replace(settings.train, **train_over)

    with distributed.process_group(train_config.device) as ctx:  # a no-op without torchrun
        if ctx.enabled:
            # Every process says it joined (so a multi-machine run shows who is there); then only rank 0 logs.
            log.info("rank %d of %d joined (local rank %d on %s, %s backend)", ctx.rank, ctx.world_size,
                     ctx.local_rank, socket.gethostname(), ctx.backend)
            if not ctx.is_main:
                log.setLevel(logging.WARNING)
        return _train_and_save(args, model_config, train_config, settings.tokenizer, model_over, ctx.is_main)


def cmd_sft(args: argparse.Namespace, settings) -> int:
    """Instruction-tune a model: the same run path as `train`, on conversations, with the SFT recipe."""
    from .chat import SFT_RECIPE
    from .checkpoint import load_checkpoint, load_train_state
    from .data import decode_corpus_bytes
    from .lab.runs import BaseModel, prepare_run, resume_run

    data = Path(args.data)
    if not data.is_file():
        raise CuteLLMError(f"--data: '{data}' does not exist")
    text, data_name = decode_corpus_bytes(data.read_bytes(), f"'{data}'"), data.name
    if args.resume:
        state = load_train_state(args.resume)
        model, tokenizer, meta = load_checkpoint(args.resume, with_meta=True)
        run = resume_run(text, data_name, model, tokenizer, meta)
        log.info("resuming %s at step %d of %d", args.resume, state.step, state.total_steps)
        return _train_run(args, run, text, args.out or args.resume, True, state)
    if not args.init_from:
        raise CuteLLMError("sft needs --init-from BASE.pth, the trained model to instruction-tune")
    model, tokenizer, meta = load_checkpoint(args.init_from, with_meta=True)
    base_path = Path(args.init_from)
    out = args.out or str(base_path.with_name(f"{base_path.stem}_chat.pth"))
    train_config = replace(settings.train, **{**SFT_RECIPE, **option_overrides(args, "train")})
    run = prepare_run(text, data_name, model.config, train_config, name=Path(out).stem,
                      base=BaseModel(base_path.stem, model, tokenizer, meta), chat=True)
    log.info("instruction-tuning %s on %s: %d conversations to learn from, %d to validate", args.init_from,
             data_name, run.dataset.train.size(0), run.dataset.val.size(0))
    return _train_run(args, run, text, out, True)


def cmd_chat(args: argparse.Namespace) -> int:
    from .chat import Message, add_chat_tokens, check_message, reply
    from .checkpoint import load_checkpoint
    from .sampling import SamplingSettings

    model, tokenizer = load_checkpoint(args.model)
    if not tokenizer.has_chat_tokens:
        print("note: this model was never instruction-tuned; its chat tokens are new, untrained rows",
              file=sys.stderr)
        model, tokenizer = add_chat_tokens(model, tokenizer)
    sampling = SamplingSettings(args.temperature, seed=args.seed) if args.temperature > 0 else None
    r = reply(model, tokenizer, [Message("user", check_message(args.message))], args.max_new_tokens,
              sampling=sampling)
    if args.show_context:
        print("the model reads: " + " ".join(tokenizer.token(i) for i in r.context.ids), file=sys.stderr)
    print(r.text + ("" if r.ended else "  (no <|end|> within the budget)"))
    return 0


def cmd_evaluate_chat(args: argparse.Namespace) -> int:
    import json

    from .chat import MAX_REPLY_TOKENS, add_chat_tokens, evaluate_chat, read_conversations, score_json, score_report
    from .checkpoint import load_checkpoint

    items = read_conversations(args.file, evaluation=True)
    model, tokenizer = load_checkpoint(args.model)
    if not tokenizer.has_chat_tokens:
        print("note: this model was never instruction-tuned: it is asked with the same template, its chat tokens "
              "new, untrained rows", file=sys.stderr)
        model, tokenizer = add_chat_tokens(model, tokenizer)
    score = evaluate_chat(model, tokenizer, items, args.max_new_tokens or MAX_REPLY_TOKENS)
    name = Path(args.model).name
    print(score_report(score, name, Path(args.file).name))
    out = Path(args.out or f"bench/chat_eval_{Path(args.model).stem}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(score_json(score, name, Path(args.file).name), indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def _train_and_save(args: argparse.Namespace, model_config, train_config, tokenizer_kind: str, model_over: dict,
                    is_main: bool) -> int:
    from .checkpoint import load_checkpoint, load_train_state
    from .data import load_corpus
    from .lab.runs import BaseModel, prepare_run, resume_run

    from .tasks import get_task, task_configs, task_corpus

    task = get_task(args.task) if args.task else None
    if task:   # a generated toy task: its problems, characters as tokens, its preset under the flags given
        text, corpus_name = task_corpus(task), f"task:{task.name}"
        model_config, train_config = task_configs(task, model_over, option_overrides(args, "train"))
        tokenizer_kind = "char"
        log.info("task %s: %s; %d training problems", task.name, task.description, text.count("\n"))
    else:
        text, corpus_name = load_corpus(args.corpus), Path(args.corpus).name
    out = args.out or args.resume or (f"models/{task.name}.pth" if task else DEFAULT_MODEL)
    base, state = None, None
    if args.resume:
        if args.init_from:
            log.warning("--resume continues its own run: ignoring --init-from")
        state = load_train_state(args.resume)
        model, tokenizer, meta = load_checkpoint(args.resume, with_meta=True)
        run = resume_run(text, corpus_name, model, tokenizer, meta)
        log.info("resuming %s at step %d of %d (its own settings; the shape and training options given here are "
                 "ignored)", args.resume, state.step, state.total_steps)
        return _train_run(args, run, text, out, is_main, state)
    if args.init_from:
        model, tokenizer, meta = load_checkpoint(args.init_from, with_meta=True)
        base = BaseModel(Path(args.init_from).stem, model, tokenizer, meta)
        if model_over or args.non_causal:
            log.warning("fine-tuning keeps the base model's shape: ignoring %s",
                        ", ".join([*model_over, *(["--non-causal"] if args.non_causal else [])]))
        log.info("fine-tuning %s: %.1f%% of the new text is outside its vocabulary", args.init_from,
                 100 * tokenizer.unk_rate(text))
    elif args.non_causal:
        model_config = replace(model_config, causal=False)
        log.warning("EXPERIMENT: training without the causal mask; the model will cheat by reading ahead")
    # Every process builds the same tokenizer and the same initial weights from the same corpus and seed.
    run = prepare_run(text, corpus_name, model_config, train_config, name=Path(out).stem,
                      tokenizer_kind=tokenizer_kind, base=base, task=task.name if task else None)
    return _train_run(args, run, text, out, is_main)


def _train_run(args: argparse.Namespace, run, text: str, out: str, is_main: bool, state=None) -> int:
    """Train a prepared run (from its start, or from `state`) and save it; a stopped run is saved resumable."""
    import signal
    import threading

    from .checkpoint import save_checkpoint
    from .fast.memory import keep_freed_memory
    from .training import train

    from .chat import messages_text

    keep_freed_memory()   # this process exists to train: each step reuses the memory the last one freed

    model, tokenizer, dataset = run.model, run.tokenizer, run.dataset
    words = messages_text(text) if run.chat else text
    log.info("%s %s: %d tokens, vocabulary %d, <unk> rate %.1f%%, %d train / %d val windows",
             "conversations" if run.chat else "corpus", run.metadata["corpus"], dataset.ids.numel(),
             tokenizer.vocab_size, 100 * tokenizer.unk_rate(words), dataset.train.size(0), dataset.val.size(0))
    log.info("model: %s parameters, %s", f"{model.num_parameters():,}", model.config)

    stop = threading.Event()

    def report(m) -> None:
        if args.stop_at_step is not None and m.step >= args.stop_at_step:
            stop.set()
        if m.step % args.log_every == 0 or m.step == m.total_steps or m.val_loss is not None:
            eta = m.elapsed_s / m.step * (m.total_steps - m.step)
            val = f" val {m.val_loss:.4f}" if m.val_loss is not None else ""
            log.info("step %d/%d epoch %d  loss %.4f%s  lr %.2e  %s tok/s  eta %.0fs", m.step, m.total_steps,
                     m.epoch, m.train_loss, val, m.lr, f"{m.tokens_per_s:,.0f}", eta)

    def interrupted(signum, frame) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # a second Ctrl-C: quit now
        log.warning("stopping at the next step (Ctrl-C again to quit without saving)")
        stop.set()

    previous = signal.signal(signal.SIGINT, interrupted) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        result = train(model, dataset, run.config, on_step=report, stop_event=stop, resume=state)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if not is_main:
        return 0
    path = save_checkpoint(out, model, tokenizer, run.checkpoint_metadata(result), result.resume_state)
    if result.resume_state is not None:
        how = (f"sft --resume {path} --data {args.data}" if args.command == "sft" else
               f"train --resume {path} " + (f"--task {args.task}" if args.task else f"--corpus {args.corpus}"))
        print(f"stopped after {result.steps} of {result.total_steps} steps; continue with: python -m cutellm {how}")
    bpc = result.final_val_bits_per_char
    print(f"saved {path}  (train loss {result.final_train_loss:.4f}, val loss "
          f"{result.final_val_loss if result.final_val_loss is None else round(result.final_val_loss, 4)}"
          f"{'' if bpc is None else f' = {bpc:.4f} bits/char'}, "
          f"{result.steps} steps of {result.global_batch_size} windows, {result.world_size} process(es), "
          f"{result.device} {result.precision}, {result.wall_time_s:.1f}s)")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint
    from .inference import stream_generate
    from .sampling import SamplingSettings

    model, tokenizer = load_checkpoint(args.model)
    unknown = tokenizer.unknown_words(args.prompt)
    if unknown:
        print(f"note: not in the vocabulary (read as <unk>): {', '.join(unknown)}", file=sys.stderr)
    sampling = SamplingSettings(args.temperature, args.top_k, args.top_p, args.seed)
    tokens = list(stream_generate(model, tokenizer, args.prompt, args.max_new_tokens, sampling=sampling,
                                  use_cache=not args.no_cache))
    print(tokenizer.continue_text(args.prompt, [t.token_id for t in tokens]))
    if args.probs:
        for t in tokens:
            alts = ", ".join(f"{w} {p:.2f}" for w, p in t.alternatives)
            print(f"  {t.text!r:>14} p={t.prob:.3f}   top: {alts}")
    return 0


def cmd_complete(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint
    from .completion import complete_phrase

    model, tokenizer, meta = load_checkpoint(args.model, with_meta=True)
    result = complete_phrase(model, tokenizer, args.phrase, top_k=args.top_k, words=meta.get("words"),
                             beam_width=args.beam)
    print(result.filled_text)
    for blank in result.blanks:
        print(f"  blank {blank.index + 1}: " + ", ".join(f"{c.word} {c.prob:.3f}" for c in blank.candidates))
    if len(result.blanks) > 1:
        for sentence in result.sentences:
            print(f"  {sentence.prob:.3f}  {sentence.text}")
    return 0


def cmd_evaluate_blanks(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint
    from .lab.evaluation import evaluate_blanks, format_report, load_blanks_file, write_evaluation

    items = load_blanks_file(args.file)
    model, tokenizer, meta = load_checkpoint(args.model, with_meta=True)
    result = evaluate_blanks(model, tokenizer, items, words=meta.get("words"), beam_width=args.beam,
                             model_name=Path(args.model).name, file_name=Path(args.file).name)
    print(format_report(result))
    print(f"wrote {write_evaluation(result, args.out)}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint
    from .inference import next_token_distribution

    model, tokenizer, meta = load_checkpoint(args.model, with_meta=True)
    print(f"model       {args.model}")
    print(f"parameters  {model.num_parameters():,}")
    for key, value in model.config.to_dict().items():
        print(f"  {key:<12}{value}")
    print(f"tokenizer   {tokenizer.kind}, {tokenizer.vocab_size} tokens")
    for key in ("corpus", "steps", "global_batch_size", "world_size", "device", "precision", "final_train_loss",
                "final_val_loss", "final_val_bits_per_char", "wall_time_s", "tokens_per_s", "saved_at"):
        if key in meta:
            print(f"{key:<24}{meta[key]}")
    print(f"\nnext token after {args.prompt!r}:")
    for word, prob in next_token_distribution(model, tokenizer, args.prompt, args.top_k):
        print(f"  {word!r:>14} {prob:6.3f} {'#' * round(prob * 40)}")
    return 0


def cmd_visualize(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint
    from .views.inspection import DEFAULT_HIGHLIGHT, DEFAULT_TEXT
    from .views.visualize import export_html

    model, tokenizer = load_checkpoint(args.model)
    result = export_html(model, tokenizer, args.out, text=args.text or DEFAULT_TEXT,
                         highlight=args.highlight or DEFAULT_HIGHLIGHT, images=not args.no_images)
    print(f"wrote {result.html_path}  ({result.html_path.stat().st_size / 1e6:.1f} MB, opens offline)")
    if result.images:
        print(f"wrote {len(result.images)} PNG snapshots in {result.images[0].parent}")
    if result.note:
        print(f"note: {result.note}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .fast.memory import keep_freed_memory
    from .lab.bench import FULL_STEPS, QUICK_STEPS, format_table, run_benchmark, write_results

    keep_freed_memory()

    steps = args.steps or (QUICK_STEPS if args.quick else FULL_STEPS)
    results = run_benchmark(args.corpus, steps=steps, device=args.device, precision=args.precision or "auto",
                            compile=bool(args.compile), threads=args.threads, progress=log.info)
    print(format_table(results))
    print(f"wrote {write_results(results, args.out)}")
    if not results["generation"]["identical"]:
        print("error: cached and uncached generation differ", file=sys.stderr)
        return 1
    return 0


def cmd_compare_blocks(args: argparse.Namespace, settings) -> int:
    from .lab.compare import compare_blocks, format_table, write_results

    recipe = settings.train if args.steps is None else replace(settings.train, max_steps=args.steps)
    results = compare_blocks(args.corpus, seeds=args.seeds, model=settings.model, recipe=recipe,
                             on_run=lambda o: log.info("%s, seed %d: val loss %.4f (%d steps, %.1fs)", o.variant,
                                                       o.seed, o.val_loss, o.steps, o.wall_time_s))
    print(format_table(results))
    print(f"wrote {write_results(results, args.out)}")
    return 0


def cmd_evaluate_task(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint
    from .tasks import check_model_for, evaluate_task, get_task

    task = get_task(args.task)
    if args.problems < 1:
        raise CuteLLMError(f"--problems must be >= 1, got {args.problems}")
    model, tokenizer, meta = load_checkpoint(args.model or f"models/{task.name}.pth", with_meta=True)
    check_model_for(task, meta, tokenizer)
    score = evaluate_task(model, tokenizer, task, args.problems)
    print(f"{task.name}: {score.accuracy:.1%} exact ({score.problems - len(score.misses)} of {score.problems} "
          "held-out problems)")
    for question, expected, answered in score.misses[:10]:
        print(f"  {question}={expected}  answered {answered!r}")
    if len(score.misses) > 10:
        print(f"  ... and {len(score.misses) - 10} more misses")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.env_file)
        setup_logging(settings.log_level)
        if args.command == "train":
            return cmd_train(args, settings)
        if args.command == "compare-blocks":
            return cmd_compare_blocks(args, settings)
        if args.command == "sft":
            return cmd_sft(args, settings)
        return {"generate": cmd_generate, "complete": cmd_complete, "evaluate-blanks": cmd_evaluate_blanks,
                "evaluate-task": cmd_evaluate_task, "inspect": cmd_inspect, "chat": cmd_chat,
                "evaluate-chat": cmd_evaluate_chat,
                "visualize": cmd_visualize, "bench": cmd_bench}[args.command](args)
    except CuteLLMError as err:
        from .fast.distributed import launch_context

        where = launch_context()  # under torchrun, say which process failed
        prefix = f"[rank {where.rank}] " if where is not None and where.enabled else ""
        print(f"{prefix}error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
