import argparse
import re
import subprocess
import sys
from dataclasses import fields

import pytest

from cutellm import ConfigError, ModelConfig, TrainConfig, load_settings
from cutellm.__main__ import add_option_flags, build_parser, option_overrides
from cutellm.config import check_options
from cutellm.options import NOT_USER_FACING, OPTION, OPTIONS, WIDGET_KINDS, Option, field_type
from cutellm.presets import presets
from cutellm.settings import ENV_VARS, SECTIONS, Settings, env_vars


def test_defaults_keep_the_original_cutegpt_shape_with_the_faster_recipe():
    s = load_settings(env_file=None, environ={})
    assert (s.model.vocab_size, s.model.d_model, s.model.n_heads, s.model.n_layers, s.model.block_size) == \
        (1000, 128, 4, 2, 20)
    # the original trained batches of 8 for 10 epochs; issue 18's recipe (README, "Why these defaults")
    t = s.train
    assert (t.batch_size, t.epochs, t.learning_rate, t.weight_decay, t.eval_batches) == (32, 6, 4e-3, 0.5, 5)


def test_env_file_overrides_and_environment_wins(tmp_path):
    env = tmp_path / ".env"
    env.write_text("MODEL_D_MODEL=64\nMODEL_N_HEADS=2\nTRAINING_EPOCHS=3\nTRAINING_LEARNING_RATE=0.01\n")
    s = load_settings(env, environ={"TRAINING_EPOCHS": "5", "LOG_LEVEL": "debug", "MODEL_TOKENIZER": "BPE"})
    assert s.model.d_model == 64 and s.model.n_heads == 2 and s.tokenizer == "bpe"
    assert s.train.epochs == 5 and s.train.learning_rate == 0.01
    assert s.log_level == "DEBUG"


@pytest.mark.parametrize("var, value, words", [
    ("MODEL_D_MODEL", "130", ["MODEL_D_MODEL", "divisible"]),
    ("MODEL_N_HEADS", "3", ["MODEL_N_HEADS", "divisible"]),
    ("TRAINING_EPOCHS", "-1", ["TRAINING_EPOCHS", ">= 1"]),
    ("TRAINING_EPOCHS", "ten", ["TRAINING_EPOCHS", "whole number"]),
    ("LOG_LEVEL", "LOUD", ["LOG_LEVEL", "DEBUG"]),
    ("MODEL_N_LAYERS", "0", ["MODEL_N_LAYERS", ">= 1"]),
    ("TRAINING_LEARNING_RATE", "0", ["TRAINING_LEARNING_RATE", "> 0"]),
    ("TRAINING_BATCH_SIZE", "0", ["TRAINING_BATCH_SIZE"]),
    ("TRAINING_SEQ_LENGTH", "1", ["TRAINING_SEQ_LENGTH"]),
    ("MODEL_VOCAB_SIZE", "2", ["MODEL_VOCAB_SIZE"]),
    ("TRAINING_DEVICE", "tpu", ["TRAINING_DEVICE"]),
    ("MODEL_TOKENIZER", "morse", ["MODEL_TOKENIZER", "bpe"]),
])
def test_each_invalid_env_value_names_its_variable(tmp_path, var, value, words):
    env = tmp_path / ".env"
    env.write_text(f"{var}={value}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(env, environ={})
    for word in words:
        assert word in str(info.value)


def test_configs_round_trip_through_plain_dicts():
    assert TrainConfig.from_dict(TrainConfig(seed=3).to_dict()) == TrainConfig(seed=3)
    assert ModelConfig.from_dict(ModelConfig(n_layers=3).to_dict()) == ModelConfig(n_layers=3)


def test_importing_cutellm_configures_no_logging_and_prints_nothing():
    code = ("import logging, cutellm; l = logging.getLogger('cutellm'); "
            "assert not l.handlers and l.level == logging.NOTSET, l; assert not logging.getLogger().handlers")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "" and out.stderr == ""


# --------------------------------------------------------------------------------------------------------------
# One description of every setting (cutellm/options.py): the configs' checks, .env, the CLI and the page come from it


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_every_field_is_an_option_or_says_why_not(section):
    cls = SECTIONS[section]
    for f in fields(cls):
        option = OPTION.get(f.name)
        assert (option is not None) != (f.name in NOT_USER_FACING), f"{cls.__name__}.{f.name}: an Option, or a " \
            "reason in NOT_USER_FACING (not both)"
        if option is None:
            assert NOT_USER_FACING[f.name].strip()
            continue
        assert option.section == section
        # On the CLI, in .env and on the Train page, or a reason why not.
        assert option.surfaces == ("cli", ".env", "page") or option.partial.strip(), option.name
        assert not (option.surfaces == ("cli", ".env", "page") and option.partial), f"{option.name}: stale reason"
        assert option.help.strip()


def test_every_option_names_a_real_field_once_with_a_usable_description():
    assert len(OPTION) == len(OPTIONS)
    for o in OPTIONS:
        kind, _ = field_type(SECTIONS[o.section], o.name)   # KeyError: no such field
        assert kind in (int, float, str, bool), o.name
        assert o.choices == () or kind is str
        if o.low is not None or o.high is not None:
            assert kind in (int, float) and o.low is not None, o.name
        if o.widget is not None:
            assert o.widget.kind in WIDGET_KINDS and o.widget.key.startswith("tr_") and o.widget.label
            if o.widget.kind == "number":   # a number box needs both ends
                assert o.low is not None and (o.high is not None or o.widget.top is not None), o.name
    for what in ("flag", "env"):
        names = [getattr(o, what) for o in OPTIONS if getattr(o, what)]
        assert len(names) == len(set(names)), what
    keys = [o.widget.key for o in OPTIONS if o.widget]
    assert len(keys) == len(set(keys))


def test_env_vars_keep_their_names():
    assert ENV_VARS == {
        "MODEL_TOKENIZER": ("settings", "tokenizer", str),
        "MODEL_VOCAB_SIZE": ("model", "vocab_size", int),
        "MODEL_D_MODEL": ("model", "d_model", int),
        "MODEL_N_HEADS": ("model", "n_heads", int),
        "MODEL_N_LAYERS": ("model", "n_layers", int),
        "MODEL_DROPOUT": ("model", "dropout", float),
        "TRAINING_BATCH_SIZE": ("train", "batch_size", int),
        "TRAINING_SEQ_LENGTH": ("model", "block_size", int),
        "TRAINING_EPOCHS": ("train", "epochs", int),
        "TRAINING_LEARNING_RATE": ("train", "learning_rate", float),
        "TRAINING_SEED": ("train", "seed", int),
        "TRAINING_DEVICE": ("train", "device", str),
        "TRAINING_PRECISION": ("train", "precision", str),
        "TRAINING_GRAD_ACCUM_STEPS": ("train", "grad_accum_steps", int),
        "MODEL_POSITIONS": ("model", "positions", str),
        "MODEL_NORM": ("model", "norm", str),
        "MODEL_MLP": ("model", "mlp", str),
        "MODEL_TIE_WEIGHTS": ("model", "tie_weights", bool),
        "LOG_LEVEL": ("settings", "log_level", str),
    }


def _flags(parser, command):
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return {flag: action.dest for action in sub._actions for flag in action.option_strings}


def test_the_train_parser_has_every_flag_and_the_old_names_still_work():
    train = _flags(build_parser(), "train")
    for o in OPTIONS:
        if o.flag:
            assert train[o.flag] == o.name
    assert {"--precision", "--compile"} <= set(_flags(build_parser(), "bench"))
    args = build_parser().parse_args(["train", "--steps", "5", "--lr", "0.01", "--grad-accum", "2", "--threads", "1",
                                      "--block-size", "8", "--compile", "--tokenizer", "bpe", "--eval-interval", "3"])
    assert option_overrides(args, "train") == {"max_steps": 5, "learning_rate": 0.01, "grad_accum_steps": 2,
                                               "num_threads": 1, "compile": True, "eval_interval": 3}
    assert option_overrides(args, "model") == {"block_size": 8}
    assert option_overrides(args, "settings") == {"tokenizer": "bpe"}
    assert option_overrides(build_parser().parse_args(["train"]), "train") == {}   # unset: .env and defaults apply


def test_adding_a_setting_takes_one_entry(tmp_path):
    # warmup_steps is a TrainConfig field no user can set today; one Option offers it everywhere.
    extra = Option("warmup_steps", "train", flag="--warmup", env="TRAINING_WARMUP_STEPS", low=10,
                   help="learning-rate warmup steps")
    options = (*OPTIONS, extra)

    parser = argparse.ArgumentParser()
    add_option_flags(parser, options)
    assert option_overrides(parser.parse_args(["--warmup", "20"]), "train", options) == {"warmup_steps": 20}
    assert "--warmup" not in _flags(build_parser(), "train")   # the real table is untouched

    assert env_vars(options)["TRAINING_WARMUP_STEPS"] == ("train", "warmup_steps", int)
    assert load_settings(None, environ={"TRAINING_WARMUP_STEPS": "20"}, options=options).train.warmup_steps == 20
    with pytest.raises(ConfigError, match="TRAINING_WARMUP_STEPS='x': expected a whole number"):
        load_settings(None, environ={"TRAINING_WARMUP_STEPS": "x"}, options=options)
    with pytest.raises(ConfigError, match=r"TRAINING_WARMUP_STEPS='-1': warmup_steps: must be a whole number >= 0"):
        load_settings(None, environ={"TRAINING_WARMUP_STEPS": "-1"}, options=options)

    check_options(TrainConfig(warmup_steps=20), "train", options)
    with pytest.raises(ConfigError, match="warmup_steps: must be a whole number >= 10, got 5"):
        check_options(TrainConfig(warmup_steps=5), "train", options)


def test_the_train_page_table_covers_every_widget_setting():
    """The page draws the widgets (tests/app/test_train.py checks each is on the page); here: the table and configs(),
    which packs every page setting of the model and the recipe from its widget (Streamlit's bare-mode state)."""
    import streamlit as st

    from ui.train import settings_form

    assert settings_form.page_options() == tuple(o for o in OPTIONS if o.widget)
    try:
        for key, value in settings_form.kept_defaults(Settings(), presets(Settings())["default"]).items():
            st.session_state[key] = value
        st.session_state.tr_noncausal = False
        model, train = settings_form.configs()
        assert model == ModelConfig() and train == TrainConfig(snapshots=settings_form.TIMELINE_SNAPSHOTS)
        st.session_state.tr_mode, st.session_state.tr_steps, st.session_state.tr_d_model = "Steps", 12, 64.0
        model, train = settings_form.configs()
        assert train.max_steps == 12 and model.d_model == 64 and isinstance(model.d_model, int)
    finally:
        st.session_state.clear()


def test_presets_keep_their_values():
    env = load_settings(None, environ={"MODEL_D_MODEL": "64"})
    p = presets(env)
    assert list(p) == ["tiny & fast", "default", "Llama-style", "bigger", "chat"]
    assert p["chat"].values["block_size"] == 64 and p["chat"].values["tokenizer"] == "word"
    assert p["tiny & fast"].train_for == "steps" and p["bigger"].train_for == p["default"].train_for == "epochs"
    gpt2 = dict(positions="learned", norm="layernorm", mlp="gelu", tie_weights=True)
    assert p["tiny & fast"].values == dict(tokenizer="word", vocab_size=500, d_model=64, n_heads=4, n_layers=1,
                                           block_size=16, dropout=0.0, batch_size=16, epochs=1, max_steps=300,
                                           learning_rate=5e-3, seed=1337, **gpt2)
    assert p["bigger"].values == dict(tokenizer="word", vocab_size=2000, d_model=192, n_heads=6, n_layers=4,
                                      block_size=32, dropout=0.1, batch_size=16, epochs=10, max_steps=5000,
                                      learning_rate=2e-3, seed=1337, **gpt2)
    # "default" is the CLI's defaults with .env
    assert p["default"].values == dict(tokenizer="word", vocab_size=1000, d_model=64, n_heads=4, n_layers=2,
                                       block_size=20, dropout=0.1, batch_size=32, epochs=6, max_steps=1000,
                                       learning_rate=4e-3, seed=1337, **gpt2)
    # A preset says what it is, never how long it takes (that depends on the host; the preview measures it).
    assert not any(re.search(r"second|minute|\bhours?\b", preset.help) for preset in p.values())
    # "Llama-style" is the default with Llama's block, so the two differ in the block alone
    assert p["Llama-style"].train_for == "epochs"
    assert {k: v for k, v in p["Llama-style"].values.items() if p["default"].values[k] != v} == dict(
        positions="rope", norm="rmsnorm", mlp="swiglu")


def test_the_log_writes_to_the_stderr_of_the_moment(monkeypatch):
    """setup_logging's handler follows sys.stderr: a stream swapped in for a while and closed after (pytest's
    capture of one test) must not break the records that come later, such as a job's relay thread's."""
    import io
    import logging

    from cutellm import setup_logging

    logger = logging.getLogger("cutellm")
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logger, "level", logger.level)
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    setup_logging("INFO")
    logging.getLogger("cutellm.lab.jobs").info("while the first stream is there")
    first.close()
    monkeypatch.setattr(sys, "stderr", second)
    monkeypatch.setattr(logging, "raiseExceptions", True)
    logging.getLogger("cutellm.lab.jobs").info("after it closed")
    assert "after it closed" in second.getvalue() and "Logging error" not in second.getvalue()
