import subprocess
import sys

import pytest

from cutellm import ConfigError, ModelConfig, TrainConfig, load_settings


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
