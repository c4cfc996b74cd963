"""compare-blocks: every variant trained per seed at equal steps, summarised with its spread and an honest verdict."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from cutellm.errors import ConfigError
from cutellm.lab.compare import Outcome, Variant, compare_blocks, format_table, summarize, verdict, write_results

from conftest import TINY_MODEL, TINY_TEXT, TINY_TRAIN


def test_the_verdict_calls_a_change_real_only_beyond_twice_the_seed_spread():
    assert verdict(-0.05, 0.01, 0.02) == "beyond the seed spread"
    assert verdict(0.03, 0.01, 0.02) == "within the seed spread (noise)"
    assert verdict(0.04, 0.02, 0.01) == "within the seed spread (noise)"   # exactly twice is not beyond
    assert verdict(0.5, 0.0, 0.0) == "one seed: no spread to judge by"


def test_the_summary_gives_mean_spread_and_change_against_the_first_variant():
    runs = [Outcome("base", s, loss, loss / 2, 100, 10, 1.0) for s, loss in ((1, 3.0), (2, 3.2))] + \
           [Outcome("other", s, loss, None, 120, 10, 2.0) for s, loss in ((1, 2.0), (2, 2.2))]
    base, other = summarize(runs)
    assert base["variant"] == "base" and base["runs"] == 2 and base["val_loss_mean"] == pytest.approx(3.1)
    assert base["val_loss_spread"] == pytest.approx(0.1414, abs=1e-4)   # the sample standard deviation
    assert base["bits_per_char_mean"] == pytest.approx(1.55) and base["verdict"] == "the baseline"
    assert other["change"] == pytest.approx(-1.0) and other["verdict"] == "beyond the seed spread"
    assert other["bits_per_char_mean"] is None and other["parameters"] == 120 and other["wall_time_s_mean"] == 2.0


def test_compare_blocks_trains_every_variant_once_per_seed_at_equal_steps(tmp_path):
    corpus = tmp_path / "tiny.txt"
    corpus.write_text(TINY_TEXT)
    variants = (Variant("base", {}), Variant("wider", {"d_model": 64}))
    seen = []
    recipe = replace(TINY_TRAIN, max_steps=20)
    results = compare_blocks(corpus, variants=variants, seeds=(1, 2), model=TINY_MODEL, recipe=recipe,
                             on_run=seen.append)
    assert [(o.variant, o.seed) for o in seen] == [("base", 1), ("base", 2), ("wider", 1), ("wider", 2)]
    assert {o.steps for o in seen} == {20}
    assert seen[0].val_loss != seen[1].val_loss          # another seed, another run
    assert seen[2].parameters > seen[0].parameters       # the variant's change reached the model
    assert [r["variant"] for r in results["summary"]] == ["base", "wider"]
    assert results["variants"] == {"base": {}, "wider": {"d_model": 64}} and results["seeds"] == [1, 2]
    table = format_table(results)
    assert "| base |" in table and "| wider |" in table and "±" in table
    out = write_results(results, tmp_path / "out" / "compare.json")
    assert json.loads(out.read_text())["summary"][1]["variant"] == "wider"


def test_a_bad_variant_or_no_seed_is_refused_before_any_training(tmp_path):
    corpus = tmp_path / "tiny.txt"
    corpus.write_text(TINY_TEXT)
    with pytest.raises(ConfigError, match="n_heads"):
        compare_blocks(corpus, variants=(Variant("bad", {"n_heads": 5}),), model=TINY_MODEL, recipe=TINY_TRAIN)
    with pytest.raises(ConfigError, match="at least one seed"):
        compare_blocks(corpus, seeds=(), model=TINY_MODEL, recipe=TINY_TRAIN)


def test_every_shipped_variant_builds_a_valid_block_and_the_command_runs_them_all(tmp_path, capsys):
    from cutellm import ModelConfig
    from cutellm.__main__ import main
    from cutellm.lab.compare import BASELINE, VARIANTS

    assert VARIANTS[0].name == BASELINE and VARIANTS[0].changes == {}
    designs = {replace(ModelConfig(), **v.changes) for v in VARIANTS}
    assert len(designs) == len(VARIANTS)                 # each variant is a different model
    corpus = tmp_path / "tiny.txt"
    corpus.write_text(TINY_TEXT)
    out = tmp_path / "compare.json"
    assert main(["--env-file", str(tmp_path / "none.env"), "compare-blocks", "--corpus", str(corpus), "--seeds", "1",
                 "--steps", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    results = json.loads(out.read_text())
    assert [r["variant"] for r in results["summary"]] == [v.name for v in VARIANTS]
    assert {r["steps"] for r in results["runs"]} == {2}
    assert all(f"| {v.name} |" in printed for v in VARIANTS)
