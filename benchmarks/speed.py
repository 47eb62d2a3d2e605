"""Speed and memory of one training step per method, and FOFA's step against its floor.

Usage: python benchmarks/speed.py [--rounds 7] [--out benchmarks/results]

For each pair (teacher, student, input size, batch) every method's full training step (forward, backward, SGD
step) is timed in interleaved rounds in one process, so drift hits all methods alike; medians are reported with
ratios to KD and to scratch. FOFA's floor is the sum of what it cannot avoid, each part timed alone in the same
rounds: the student forward + backward, the unprompted teacher forward without autograd, the prompted teacher
forward + backward to its inputs, the training-only modules' forward + backward and the optimiser step. Peak
memory is the resident set size of a separate process running a few steps of one method. A torch.profiler table
shows where a FOFA step spends its time, and a table times one optimiser step per optimiser.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

import fofakd

PAIRS = [
    {"teacher": "resnet18", "student": "deit_tiny_patch16_224", "size": 32, "batch": 64,
     "student_kwargs": {"patch_size": 4}},
    {"teacher": "resnet18", "student": "deit_tiny_patch16_224", "size": 32, "batch": 32,
     "student_kwargs": {"patch_size": 4}},
    {"teacher": "convnext_tiny", "student": "deit_tiny_patch16_224", "size": 224, "batch": 8, "student_kwargs": {}},
    {"teacher": "mixer_b16_224", "student": "resnet18", "size": 224, "batch": 4, "student_kwargs": {}},
]
# "fofa-convs" is FOFA with its bias-mode prompts computed by their convolutions (before the window-sum shortcut).
METHODS = ["scratch", "kd", "ofa", "rsd", "fofa-convs", "fofa"]


def build(pair: dict, method: str):
    torch.manual_seed(0)
    size = pair["size"]
    teacher = fofakd.create_model(pair["teacher"], num_classes=100, img_size=size)
    student = fofakd.create_model(pair["student"], num_classes=100, img_size=size, **pair["student_kwargs"])
    distiller = fofakd.build_distiller(method.removesuffix("-convs"), teacher=teacher, student=student,
                                       input_size=(3, size, size)).train()
    for module in distiller.modules():
        if hasattr(module, "use_window_sums") and method.endswith("-convs"):
            module.use_window_sums = False
    optimizer = torch.optim.SGD(distiller.trainable_parameters(), lr=1e-3, momentum=0.9)
    return distiller, optimizer


def batch(pair: dict):
    g = torch.Generator().manual_seed(1)
    return (torch.randn(pair["batch"], 3, pair["size"], pair["size"], generator=g),
            torch.randint(0, 100, (pair["batch"],), generator=g))


def train_step(distiller, optimizer, x, y) -> None:
    out = distiller(x, y)
    optimizer.zero_grad(set_to_none=True)
    out["loss"].backward()
    optimizer.step()


def floor_parts(fofa, optimizer, x) -> dict:
    """Callables for each unavoidable part of a FOFA step, each runnable alone: FOFA's own passes and feature loss,
    taken apart, and the optimiser's step over its parameters (gradients left by the previous step)."""
    source = fofa.source

    def student_part():
        logits, feats = source.student_forward(x, None, fofa.student_stages)
        (logits.float().mean() + sum(f.float().mean() for f in feats)).backward()

    def teacher_plain():
        with torch.no_grad():
            source.teacher_forward(x, fofa.teacher_stages)

    def teacher_prompted():
        with fofa.prompt_hooks.active():
            logits, feats = source.teacher_forward(x, fofa.teacher_stages)
        (logits.float().mean() + sum(f.float().mean() for f in feats)).backward()

    with torch.no_grad():
        _, s_feats = source.student_forward(x, None, fofa.student_stages)
        _, t_feats = source.teacher_forward(x, fofa.teacher_stages)

    def modules_part():
        fofa.feature_loss([f.detach().requires_grad_() for f in s_feats], t_feats).backward()

    return {"student fwd+bwd": student_part, "teacher fwd (no grad)": teacher_plain,
            "prompted teacher fwd+bwd": teacher_prompted, "training-only modules fwd+bwd": modules_part,
            "optimiser step": optimizer.step}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def paired_ratio(samples: dict[str, list[float]], method: str, base: str = "kd") -> float:
    """Median over rounds of `method`'s step over `base`'s step in the same round: the two ran seconds apart, so
    drift in the machine's speed between rounds cancels, which it does not in the ratio of the two medians."""
    return statistics.median(a / b for a, b in zip(samples[method], samples[base]))


def bench_pair(pair: dict, rounds: int) -> dict:
    x, y = batch(pair)
    built = {m: build(pair, m) for m in METHODS}
    parts = floor_parts(*built["fofa"], x)
    jobs = {m: (lambda m=m: train_step(*built[m], x, y)) for m in METHODS}
    jobs.update({f"floor: {k}": v for k, v in parts.items()})
    for job in jobs.values():  # warm-up (allocator, first-call overheads, FOFA's feedback path)
        job()
        job()
    samples = {name: [] for name in jobs}
    for _ in range(rounds):
        for name, job in jobs.items():
            samples[name].append(timed(job))
    median = {name: statistics.median(v) for name, v in samples.items()}
    floor = sum(v for k, v in median.items() if k.startswith("floor"))
    return {
        **{k: v for k, v in pair.items()},
        "median_step_s": median,
        "all_step_s": samples,
        "ratio_to_kd": {m: median[m] / median["kd"] for m in METHODS},
        "paired_ratio_to_kd": {m: paired_ratio(samples, m) for m in METHODS},
        "ratio_to_scratch": {m: median[m] / median["scratch"] for m in METHODS},
        "fofa_floor_s": floor,
        "fofa_over_floor": median["fofa"] / floor,
        "extra_parameters": {m: built[m][0].num_extra_parameters() for m in METHODS},
        "images_per_s": {m: pair["batch"] / median[m] for m in METHODS},
        # After the rounds every parameter has a gradient (FOFA's fusion blocks included), which fused SGD needs.
        "optimiser_step_s": optimiser_steps({m: built[m][0] for m in ("kd", "fofa")}, max(rounds, 15)),
    }


OPTIMISERS = {
    "SGD with momentum, for-loop (this benchmark's steps)": lambda params: torch.optim.SGD(
        params, lr=1e-3, momentum=0.9, foreach=False),
    "SGD with momentum, fused": lambda params: torch.optim.SGD(params, lr=1e-3, momentum=0.9, fused=True),
    "AdamW, for-loop (timm's and torch's CPU default)": lambda params: torch.optim.AdamW(
        params, lr=1e-3, foreach=False),
    "AdamW, fused (the engine's default)": lambda params: torch.optim.AdamW(params, lr=1e-3, fused=True),
}


def optimiser_steps(distillers: dict, rounds: int) -> dict[str, dict[str, float]]:
    """Median time (s) of one `optimizer.step()` per optimiser over each distiller's trainable parameters, with the
    gradients they hold, in interleaved rounds."""
    steps = {}
    for method, distiller in distillers.items():
        params = list(distiller.trainable_parameters())
        for name, make in OPTIMISERS.items():
            optimiser = make(params)
            optimiser.step()  # creates the state
            steps[(method, name)] = optimiser.step
    samples = {key: [] for key in steps}
    for _ in range(rounds):
        for key, step in steps.items():
            samples[key].append(timed(step))
    return {name: {method: statistics.median(samples[(method, name)]) for method in distillers}
            for name in OPTIMISERS}


def profile_fofa(pair: dict) -> list[dict]:
    from torch.profiler import ProfilerActivity, profile

    distiller, optimizer = build(pair, "fofa")
    x, y = batch(pair)
    train_step(distiller, optimizer, x, y)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            train_step(distiller, optimizer, x, y)
    rows = []
    for event in sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:12]:
        rows.append({"op": event.key, "self_cpu_ms_per_step": event.self_cpu_time_total / 1000 / 3,
                     "calls_per_step": event.count / 3})
    return rows


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure_step_memory(pair_index: int, method: str) -> float:
    """In this process: peak resident memory (MiB) of 3 training steps above the memory held before them."""
    pair = PAIRS[pair_index]
    distiller, optimizer = build(pair, method)
    x, y = batch(pair)
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    for _ in range(3):
        train_step(distiller, optimizer, x, y)
    return (_status_kib("VmHWM") - before) / 1024


def peak_memory(pair_index: int, method: str) -> float:
    """`measure_step_memory` in a fresh process, so methods do not share an allocator's history."""
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import speed; "
            f"print(speed.measure_step_memory({pair_index}, {method!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return float(out.stdout.strip().splitlines()[-1])


def markdown(results: dict) -> str:
    lines = [f"# Training-step speed and memory\n\nLast command: `{results['command']}`  \nMachine: "
             f"{results['machine']}  \nWall time: {results['wall_time_s']:.0f} s. Medians over interleaved rounds; "
             "\"x KD\" is the ratio of the medians, \"x KD, per round\" the median of each round's ratio (robust to "
             "drift between rounds); each pair names the command that measured it.\n"]
    for r in results["pairs"]:
        lines.append(f"## {r['teacher']} -> {r['student']}, {r['size']} px, batch {r['batch']}\n")
        when = f", {r['date']}" if "date" in r else ""
        lines.append(f"Measured by `{r.get('command', results['command'])}`{when}, "
                     f"{r.get('rounds', results['rounds'])} rounds.\n")
        lines.append("| method | step (ms) | images/s | x KD | x KD, per round | x scratch | extra params | "
                     "peak memory increase (MiB) |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for m in [m for m in METHODS if m in r["median_step_s"]]:  # pairs measured before a method existed
            lines.append(f"| {m} | {1000 * r['median_step_s'][m]:.0f} | {r['images_per_s'][m]:.0f} | "
                         f"{r['ratio_to_kd'][m]:.2f} | {paired_ratio(r['all_step_s'], m):.2f} | "
                         f"{r['ratio_to_scratch'][m]:.2f} | "
                         f"{r['extra_parameters'][m] / 1e6:.2f} M | {r['peak_memory_mib'][m]:.0f} |")
        lines.append("\nFOFA's floor (each part timed alone):\n")
        lines.append("| part | median (ms) |\n|---|---|")
        for k, v in r["median_step_s"].items():
            if k.startswith("floor"):
                lines.append(f"| {k[7:]} | {1000 * v:.0f} |")
        lines.append(f"| **floor** | **{1000 * r['fofa_floor_s']:.0f}** |")
        kd = r["median_step_s"]["kd"]
        lines.append(f"\nFOFA step / floor = **{r['fofa_over_floor']:.2f}**; FOFA / KD = "
                     f"{r['ratio_to_kd']['fofa']:.2f}, before the window-sum shortcut "
                     f"{r['ratio_to_kd']['fofa-convs']:.2f} (the reference reports 3.2x KD per epoch); the floor "
                     f"alone is {r['fofa_floor_s'] / kd:.2f}x KD.\n")
        if "optimiser_step_s" in r:
            lines.append("One optimiser step alone (median of interleaved steps; FOFA adds "
                         f"{r['extra_parameters']['fofa'] / 1e6:.2f} M training-only parameters):\n")
            lines.append("| optimiser | KD (ms) | FOFA (ms) |\n|---|---|---|")
            for name, times in r["optimiser_step_s"].items():
                lines.append(f"| {name} | {1000 * times['kd']:.0f} | {1000 * times['fofa']:.0f} |")
            lines.append("")
        lines.append("Where a FOFA step spends its time (torch.profiler, self CPU time):\n")
        lines.append("| op | ms per step | calls per step |\n|---|---|---|")
        for row in r["profile"]:
            lines.append(f"| `{row['op']}` | {row['self_cpu_ms_per_step']:.1f} | {row['calls_per_step']:.0f} |")
        lines.append("")
    return "\n".join(lines)


def merged_pairs(previous: Path, fresh: list[dict]) -> list[dict]:
    """`fresh` pair results in PAIRS order, with the pairs not re-measured kept from a previous results file."""
    def key(r: dict) -> tuple:
        return r["teacher"], r["student"], r["size"], r["batch"]

    kept = {}
    if previous.exists():
        old = json.loads(previous.read_text())
        for r in old["pairs"]:  # results from before pairs carried their own command
            kept[key(r)] = {"command": old["command"], "rounds": old["rounds"], **r}
    kept.update({key(r): r for r in fresh})
    order = [key(p) for p in PAIRS]
    return sorted(kept.values(), key=lambda r: order.index(key(r)) if key(r) in order else len(order))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--pairs", type=int, nargs="*",
                        help="indices into PAIRS (default: all); the other pairs' results are kept from the last run")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    start = time.perf_counter()
    command = ("python benchmarks/speed.py " + " ".join(sys.argv[1:])).strip()
    chosen = args.pairs if args.pairs is not None else list(range(len(PAIRS)))
    pairs = []
    for index in chosen:
        result = bench_pair(PAIRS[index], args.rounds)
        result["profile"] = profile_fofa(PAIRS[index])
        result["peak_memory_mib"] = {m: peak_memory(index, m) for m in METHODS}
        result.update(command=command, rounds=args.rounds, date=time.strftime("%Y-%m-%d"))
        pairs.append(result)
        print(f"{PAIRS[index]['teacher']} -> {PAIRS[index]['student']}: FOFA/floor {result['fofa_over_floor']:.2f}, "
              f"FOFA/KD {result['ratio_to_kd']['fofa']:.2f}", flush=True)
    out = Path(args.out)
    results = {"command": command,
               "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
                          f"torch {torch.__version__}",
               "rounds": args.rounds, "wall_time_s": time.perf_counter() - start,
               "pairs": merged_pairs(out / "speed.json", pairs) if args.pairs is not None else pairs}
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "speed.md").write_text(markdown(results))
    print(f"wrote {out / 'speed.md'}")


if __name__ == "__main__":
    main()
