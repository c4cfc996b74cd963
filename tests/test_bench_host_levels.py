"""bench/host_levels.py: finding a host's fast and slow spells in step times, and pricing a run at the fast level."""

from __future__ import annotations

from pathlib import Path

import pytest

# Imported by its name (not from its path): the processes it spawns import it again.
from bench import host_levels as levels_module

two_levels, host_levels, at_fast_level, agreement = (levels_module.two_levels, levels_module.host_levels,
                                                      levels_module.at_fast_level, levels_module.agreement)


def spells(pattern: str, fast: float = 0.033, slow: float = 0.044) -> list[float]:
    """Step times: 'F' a fast step, 's' a slow one, each with a little jitter of its own."""
    return [(fast if c == "F" else slow) * (1 + 0.01 * ((i * 7) % 5 - 2)) for i, c in enumerate(pattern)]


def run(pattern: str, evals_every: int = 10, eval_fast: float = 0.1, eval_slow: float = 0.13,
        final: float = 1.0, rest: float = 2.0) -> dict:
    steps = spells(pattern)
    evals = [[s, eval_slow if pattern[s - 1] == "s" else eval_fast] for s in range(evals_every, len(steps) + 1,
                                                                                   evals_every)]
    eval_s = sum(t for _, t in evals) + final
    return {"step_times_s": steps, "eval_times_s": evals, "final_eval_s": final, "steps_s": sum(steps),
            "eval_s": eval_s, "wall_s": sum(steps) + eval_s + rest}


def test_two_levels_are_found_with_the_split_between_them():
    fast, slow, split = two_levels(spells("F" * 60 + "s" * 40))
    assert fast == pytest.approx(0.033, rel=0.02) and slow == pytest.approx(0.044, rel=0.02)
    assert 0.034 < split < 0.043


@pytest.mark.parametrize("times", [spells("F" * 100), spells("F" * 95 + "s" * 5),           # one level; too few slow
                                   spells("F" * 50 + "s" * 50, slow=0.036), spells("Fs")])  # too close; too few
def test_one_level_is_one_level(times):
    assert two_levels(times) is None


def test_the_levels_come_from_the_steps_and_the_evaluations_that_followed_them():
    runs = [run("F" * 100 + "s" * 100), run("s" * 50 + "F" * 150)]
    levels = host_levels(runs)
    assert levels.step_factor == pytest.approx(44 / 33, rel=0.03)
    assert levels.eval_factor == pytest.approx(1.3, rel=0.01)
    assert levels.is_slow(0.044) and not levels.is_slow(0.033)
    assert host_levels([run("F" * 200)]) is None


def test_a_run_priced_at_the_fast_level_loses_only_its_slow_spells():
    levels = host_levels([run("F" * 100 + "s" * 100), run("s" * 50 + "F" * 150)])
    fast, half_slow = at_fast_level(run("F" * 200), levels), at_fast_level(run("F" * 100 + "s" * 100), levels)
    assert half_slow["slow_share"] == 0.5 and fast["slow_share"] == 0.0
    # The same work at the same level: the slow half, priced at the fast level, costs what the fast half did (the
    # jitter aside); the rest (2 s) is kept as measured; the final evaluation followed a slow step.
    assert half_slow["steps_s"] == pytest.approx(fast["steps_s"], rel=0.02)
    assert half_slow["eval_s"] == pytest.approx(fast["eval_s"] - 1.0 + 1.0 / 1.3, rel=0.01)
    rest = half_slow["wall_s"] - half_slow["steps_s"] - half_slow["eval_s"]
    assert rest == pytest.approx(2.0) and fast["wall_s"] == pytest.approx(run("F" * 200)["wall_s"])
    # With one level there is nothing to take out.
    mixed = run("F" * 100 + "s" * 100)
    assert at_fast_level(mixed, None)["wall_s"] == pytest.approx(mixed["wall_s"])


def test_two_processes_taking_turns_are_counted_by_level():
    rounds = list(zip(spells("F" * 30 + "s" * 30 + "F" * 10), spells("F" * 30 + "s" * 29 + "F" * 11)))
    found = agreement(rounds)
    assert found["two_levels"] and found["rounds"] == 70
    assert found["both_fast"] == pytest.approx(40 / 70) and found["both_slow"] == pytest.approx(29 / 70)
    assert found["one_of_each"] == pytest.approx(1 / 70)
    assert agreement(list(zip(spells("F" * 40), spells("F" * 40)))) == {"two_levels": False, "rounds": 40}


def test_two_processes_take_turns_on_the_benchmark_model():
    corpus = Path(__file__).resolve().parents[1] / "data" / "training_data.txt"
    rounds = levels_module.take_turns(0.5, corpus)   # at least one round, however slow the host
    assert rounds and all(len(pair) == 2 and all(0 < t < 10 for t in pair) for pair in rounds)
