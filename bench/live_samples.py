"""What do the Train page's live samples cost? The same run with and without them, alternating.

    taskset -c 1 env OMP_NUM_THREADS=1 python bench/live_samples.py [--steps N] [--repeats 3]

Trains the CLI's default model and recipe (data/training_data.txt, word tokens, 2 layers x 4 heads, width 128,
context 20, batch 32, 6 epochs: 1,068 steps; or `--steps` steps) as a TrainingJob, as the app does, once without and
once with a SampleSpec (a 12-token greedy continuation and one filled blank at each of the ~40 evaluations),
`--repeats` times, alternating so that drifts of the machine hit both alike. Prints each run's wall time, the
medians, the slowdown, and the time the samples themselves took (LiveSample.seconds) as a share of the run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cutellm import ModelConfig, TrainConfig, load_corpus  # noqa: E402  (after the path is set)
from cutellm.lab.jobs import TrainingJob  # noqa: E402
from cutellm.lab.runs import prepare_run  # noqa: E402
from cutellm.lab.samples import SampleSpec  # noqa: E402


def one_run(text: str, steps: int, samples: bool) -> tuple[float, float, int]:
    """(wall seconds of training, seconds spent on samples, samples taken)."""
    run = prepare_run(text, "training_data.txt", ModelConfig(), replace(TrainConfig(), max_steps=steps or None))
    job = TrainingJob(run, samples=SampleSpec() if samples else None).start()
    job.join()
    snap = job.snapshot()
    return job.result.wall_time_s, sum(s.seconds for s in snap.samples), len(snap.samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=0, help="0: the whole default run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    text = load_corpus(ROOT / "data" / "training_data.txt")
    plain, sampled, own = [], [], []
    for i in range(args.repeats):
        for with_samples in (False, True):
            wall, spent, count = one_run(text, args.steps, with_samples)
            (sampled if with_samples else plain).append(wall)
            if with_samples:
                own.append(spent / wall)
            print(f"run {i + 1} {'with' if with_samples else 'without'} samples: {wall:.2f} s"
                  + (f" ({count} samples, {spent:.2f} s in them)" if with_samples else ""), flush=True)
    a, b = statistics.median(plain), statistics.median(sampled)
    print(f"median without {a:.2f} s, with {b:.2f} s: {100 * (b / a - 1):+.1f}% wall time; the samples themselves "
          f"took {100 * statistics.median(own):.1f}% of the run")


if __name__ == "__main__":
    main()
