"""bench/app_overhead.py's CPU accounting (the browser part is not run here)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("bench_app_overhead",
                                              Path(__file__).resolve().parents[1] / "bench" / "app_overhead.py")
overhead = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = overhead   # its dataclasses look their module up
spec.loader.exec_module(overhead)

TICK = os.sysconf("SC_CLK_TCK")


def test_the_page_is_charged_for_everything_but_the_busy_training_threads():
    first = overhead.CpuSample(at=100.0, server_ticks=10 * TICK, thread_ticks={1: 2 * TICK, 2: 3 * TICK, 3: 0},
                               browser_ticks={50: TICK, 51: 0})
    # 20 s later: threads 1 and 2 trained for 19 s each, thread 3 did 0.5 s; two script-run threads came and went
    # (0.3 s, only in the process total); a new browser process (52) appeared.
    last = overhead.CpuSample(at=120.0, server_ticks=(10 + 19 + 19 + 0.5 + 0.3) * TICK,
                              thread_ticks={1: 21 * TICK, 2: 22 * TICK, 3: 0.5 * TICK},
                              browser_ticks={50: 2 * TICK, 51: 0.5 * TICK, 52: 0.1 * TICK})
    cpu = overhead.CpuWatch.between(first, last)
    assert cpu["seconds"] == 20.0 and cpu["cpus"] == os.cpu_count()
    assert cpu["server_training_cpu_s"] == pytest.approx(38.0)
    assert cpu["server_other_cpu_s"] == pytest.approx(0.8)
    assert cpu["browser_cpu_s"] == pytest.approx(1.6) and cpu["browser_s_per_20s"] == pytest.approx(1.6)
    assert cpu["page_share"] == pytest.approx(2.4 / (20 * os.cpu_count()))
    assert cpu["page_share"] == pytest.approx(cpu["browser_share"] + cpu["server_other_share"])


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_a_busy_child_is_found_and_its_cpu_time_read():
    # The child burns 0.5 s of CPU, says how much CPU it has used in all, waits for a line (using none), then says
    # again how much it has used: the reading taken in between must lie between its own two counts.
    child = subprocess.Popen([sys.executable, "-c", "import sys, time\nt = time.process_time()\n"
                              "while time.process_time() - t < 0.5: pass\n"
                              "print('done', time.process_time(), flush=True)\nsys.stdin.readline()\n"
                              "print('after', time.process_time(), flush=True)"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        word, used = child.stdout.readline().split()
        assert word == "done"
        found = overhead.descendants(os.getpid())
        assert child.pid in found and found[child.pid].startswith("python")
        ticks = overhead.CpuWatch(child.pid, [child.pid]).sample().browser_ticks[child.pid]
        assert set(overhead.thread_ticks(child.pid)) == {child.pid}   # one thread: the main one
        child.stdin.write("go\n")
        child.stdin.flush()
        word, used_after = child.stdout.readline().split()
        # The same CPU time as the child's own counts before and after the reading, in clock ticks (the /proc unit;
        # a count rounds down, hence one tick either side), whatever the host's speed: CPU used, not time passed.
        counted_before, counted_after = round(float(used) * TICK), round(float(used_after) * TICK)
        assert counted_before - 2 <= ticks <= counted_after + 1
    finally:
        child.kill()
        child.wait()
    time.sleep(0.1)
    assert child.pid not in overhead.descendants(os.getpid())


def test_wall_time_is_also_compared_pair_by_pair():
    runs = [({"wall_s": 100.0}, {"wall_s": 110.0}), ({"wall_s": 80.0}, {"wall_s": 76.0}),
            ({"wall_s": 50.0}, {"wall_s": 51.0})]
    assert overhead.pair_ratios(runs) == pytest.approx([0.10, -0.05, 0.02])


def test_the_gap_is_split_into_steps_evaluations_and_the_rest():
    # Pair 1: the app spent 4 s more in steps and 1 s more in the rest; pair 2: 2 s more in evaluations.
    runs = [({"wall_s": 100.0, "steps_s": 80.0, "eval_s": 15.0}, {"wall_s": 105.0, "steps_s": 84.0, "eval_s": 15.0}),
            ({"wall_s": 50.0, "steps_s": 40.0, "eval_s": 8.0}, {"wall_s": 52.0, "steps_s": 40.0, "eval_s": 10.0})]
    split = overhead.split_of_the_gap(runs)
    assert split == pytest.approx({"steps": (0.04 + 0.0) / 2, "evaluations": (0.0 + 0.04) / 2, "rest": 0.005})


def _run(pattern: str, step_scale: float = 1.0, rest: float = 1.0) -> dict:
    """A run whose steps are 'F' (33 ms) or 's' (44 ms, a slow spell), times `step_scale`; an evaluation of 0.1 s
    (0.13 s in a slow spell) every 10 steps; a final one of 1 s (1.3 s)."""
    steps = [(0.033 if c == "F" else 0.044) * step_scale * (1 + 0.002 * (i % 3)) for i, c in enumerate(pattern)]
    evals = [[s, 0.13 if pattern[s - 1] == "s" else 0.1] for s in range(10, len(steps) + 1, 10)]
    final = 1.3 if pattern[-1] == "s" else 1.0
    eval_s = sum(t for _, t in evals) + final
    return {"step_times_s": steps, "eval_times_s": evals, "final_eval_s": final, "steps_s": sum(steps),
            "eval_s": eval_s, "wall_s": sum(steps) + eval_s + rest}


def test_the_pairs_are_also_compared_with_the_hosts_slow_spells_taken_out():
    # The app's steps cost 3% more at either level. Pair 1 met no slow spell in its direct run and a long one in its
    # app run (a large raw gap); pair 2 the other way round (the app looks faster); pair 3 met the same spells.
    runs = [(_run("F" * 300), _run("F" * 100 + "s" * 200, 1.03)),
            (_run("s" * 200 + "F" * 100), _run("F" * 300, 1.03)),
            (_run("F" * 150 + "s" * 150), _run("F" * 150 + "s" * 150, 1.03))]
    raw = overhead.pair_ratios(runs)
    assert raw[0] > 0.15 and raw[1] < -0.1
    same = overhead.at_the_same_level(runs)
    assert same["levels"]["step_factor"] == pytest.approx(44 / 33, rel=0.01)
    # What is left is the 3% of the steps, as a share of the whole wall time, in every pair.
    expected = [0.03 * one["steps_s"] / one["wall_s"] for one in
                (overhead.at_fast_level(r[0], overhead.host_levels([x for x, _ in runs])) for r in runs)]
    assert same["pairs"] == pytest.approx(expected, rel=0.05)
    assert same["gap_by_part"]["evaluations"] == pytest.approx(0, abs=1e-9)
    assert same["gap_by_part"]["rest"] == pytest.approx(0, abs=1e-9)
    assert same["slow_share"][0] == [0.0, pytest.approx(2 / 3)]
    # A host of one level: the pairs stand as measured.
    steady = [(_run("F" * 300), _run("F" * 300, 1.03))]
    assert overhead.at_the_same_level(steady)["levels"] is None
    assert overhead.at_the_same_level(steady)["pairs"] == pytest.approx(overhead.pair_ratios(steady))


@pytest.mark.parametrize("threads, cpus, slots", [(None, 2, None), (1, 2, "2"), (2, 2, "1"), (4, 16, "4"),
                                                   (3, 16, "5")])
def test_the_app_trains_with_the_threads_asked_for(threads, cpus, slots):
    """`--threads` reaches the app's worker through its training slots: the worker's rule (cores / slots) must give
    the same thread count back."""
    from cutellm.lab.jobs import threads_per_slot, training_slots

    env = overhead.server_env(threads, cpus)
    assert env.get("CUTEGPT_TRAINING_SLOTS") == slots
    if threads is not None:
        assert threads_per_slot(training_slots(env), cpus) == threads


@pytest.mark.parametrize("threads, cpus", [(0, 2), (3, 2), (4, 10)])
def test_a_thread_count_the_app_cannot_train_with_is_refused(threads, cpus):
    with pytest.raises(ValueError, match="cores / slots"):
        overhead.server_env(threads, cpus)


def test_the_direct_run_reports_the_threads_it_trained_with():
    """The JSON's "threads" is the direct run's own torch thread count: --threads 1 trains on one."""
    corpus = Path(__file__).resolve().parents[1] / "data" / "training_data.txt"
    run = overhead.direct(corpus, steps=12, threads=1)
    assert run["threads"] == 1
    assert len(run["step_times_s"]) == 12 and run["wall_s"] >= run["steps_s"] > 0
