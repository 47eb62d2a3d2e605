"""Carrying out a comparison: finished runs are skipped, interrupted ones resume, a failed one is reported and the
rest go on; runs go one by one in this process or `parallel` at a time as `fofakd distill` processes."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import yaml

from ..classification.config import build_config, check_run
from ..errors import FofakdError, RunInterrupted
from ..files import write_text
from .plan import Comparison

STATE_DIR = ".compare"  # per-run configs and logs of parallel runs
_ECHO_LOCK = threading.Lock()


def echo_line(text: str) -> None:
    """Print one whole line. Parallel runs report from their own threads, and `print` writes the text and its
    newline separately, so two threads printing at once could join their lines into one."""
    with _ECHO_LOCK:
        print(text, flush=True)


def run_state(comparison: Comparison, method: str, seed: int) -> str:
    """done (summary.json written), partial (a checkpoint to resume from) or new."""
    folder = comparison.run_dir(method, seed)
    if (folder / "summary.json").is_file():
        return "done"
    return "partial" if (folder / "checkpoints" / "last.pt").is_file() else "new"


def run_command(comparison: Comparison, method: str, seed: int) -> list[str]:
    """The `fofakd distill` command that makes (or continues) one run, through its config file."""
    config = comparison.out / STATE_DIR / f"{method}-seed{seed}.yaml"
    resume = ["--resume"] if run_state(comparison, method, seed) == "partial" else []
    return ["fofakd", "distill", "--config", str(config), *resume]


def shown_command(comparison: Comparison, method: str, seed: int) -> str:
    """The same run as one `fofakd distill` command line with flags, to read or to run by hand."""
    import shlex

    words = ["fofakd", "distill"]
    for key, value in comparison.run_options(method, seed).items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            words.append(flag if value else f"--no-{key.replace('_', '-')}")
        elif isinstance(value, dict):
            if value:
                words += [flag, *(f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
                                  for k, v in value.items())]
        elif value is not None:
            words += [flag, str(value)]
    if run_state(comparison, method, seed) == "partial":
        words.append("--resume")
    return shlex.join(words)


def write_run_config(comparison: Comparison, method: str, seed: int) -> Path:
    path = comparison.out / STATE_DIR / f"{method}-seed{seed}.yaml"
    return write_text(path, yaml.safe_dump(comparison.run_options(method, seed), sort_keys=False))


def run_one(comparison: Comparison, method: str, seed: int) -> None:
    """Make (or continue) one run of the comparison in this process; a finished run is left as it is."""
    from ..classification.training import run

    if run_state(comparison, method, seed) == "done":
        return

    resume = run_state(comparison, method, seed) == "partial"
    cfg = build_config({**comparison.run_options(method, seed), "resume": resume})
    check_run(cfg, "distill")
    run(cfg, "distill")


def _subprocess(comparison: Comparison, method: str, seed: int, slot: int, gpus: int) -> None:
    """One run as its own process: GPUs one per process, else the CPU threads split between the processes."""
    env = dict(os.environ)
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = str(slot % gpus)
    else:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // comparison.parallel))
    command = [sys.executable, "-m", "fofakd.cli", *run_command(comparison, method, seed)[1:]]
    log = comparison.out / STATE_DIR / f"{method}-seed{seed}.log"
    with open(log, "w") as f:
        code = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, env=env).returncode
    if code:
        lines = log.read_text().splitlines()
        reason = next((line.removeprefix("fofakd: error: ") for line in reversed(lines)
                       if line.startswith("fofakd: error:")), lines[-1] if lines else f"exit code {code}")
        raise FofakdError(f"{reason} (log: {log})")


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def execute(comparison: Comparison, on_change: Callable[[], None], echo: Callable[[str], None] = echo_line
            ) -> dict[str, str]:
    """Make every run of the comparison; returns {"method/seedN": error} for the runs that failed."""
    runs = comparison.runs()
    todo = [(m, s) for m, s in runs if run_state(comparison, m, s) != "done"]
    echo(f"compare: {len(runs)} runs, {len(runs) - len(todo)} already done, {len(todo)} to run "
         f"({comparison.parallel} at a time) in {comparison.out}")
    failures: dict[str, str] = {}
    durations: list[float] = []
    # Counted once, before the runs' threads start.
    gpus = _gpu_count() if comparison.parallel > 1 else 0
    start = time.perf_counter()

    def one(job: tuple[str, int], slot: int) -> None:
        method, seed = job
        name = f"{method}/seed{seed}"
        state = run_state(comparison, method, seed)
        echo(f"compare: start {name}" + (" (resuming)" if state == "partial" else ""))
        began = time.perf_counter()
        write_run_config(comparison, method, seed)
        try:
            if comparison.parallel > 1:
                _subprocess(comparison, method, seed, slot, gpus)
            else:
                run_one(comparison, method, seed)
        except RunInterrupted:
            raise  # SIGTERM or Ctrl-C stops the comparison; the run keeps its checkpoint
        except Exception as error:  # a failed run is reported and the others go on
            message = str(error) if isinstance(error, FofakdError) else f"{type(error).__name__}: {error}"
            failures[name] = message
            echo(f"compare: FAILED {name}: {message}")
        else:
            durations.append(time.perf_counter() - began)
            echo(f"compare: done {name} in {durations[-1] / 60:.1f} min")
        finished = len(durations) + len(failures)
        left = len(todo) - finished
        eta = (f"about {sum(durations) / len(durations) * left / comparison.parallel / 60:.0f} min left"
               if durations else "time left unknown until a run finishes")
        echo(f"compare: {finished}/{len(todo)} runs of this invocation finished, {eta} "
             f"(elapsed {(time.perf_counter() - start) / 60:.1f} min)")
        on_change()

    if comparison.parallel == 1:
        for job in todo:
            one(job, 0)
    else:
        with ThreadPoolExecutor(comparison.parallel) as pool:
            list(pool.map(lambda item: one(item[1], item[0] % comparison.parallel), enumerate(todo)))
    return failures


def timed_steps(comparison: Comparison, steps: int = 3) -> dict[str, dict[str, Any]]:
    """Per method: seconds per training step (median of `steps` after one warm-up) and steps per run, from the
    run's own data and models (seed 0), for `--plan`'s estimate."""
    import statistics

    import torch

    from ..classification.training import ClassificationTask
    from ..engine.optim import build_optimizer
    from ..engine.distributed import init_distributed

    out = {}
    for method in comparison.methods:
        cfg = build_config(comparison.run_options(method, 0))
        check_run(cfg, "distill")
        info = init_distributed(cfg.device)
        task = ClassificationTask(cfg, "distill", info, info.device)
        distiller, _ = task.build()
        optimizer = build_optimizer(cfg, distiller)
        images, targets = next(iter(task.train_loader))
        times = []
        for _ in range(steps + 1):
            begin = time.perf_counter()
            loss = distiller.train()(images, targets)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if info.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - begin)
        out[method] = {"step_s": statistics.median(times[1:]), "steps": len(task.train_loader) * cfg.epochs}
    return out
