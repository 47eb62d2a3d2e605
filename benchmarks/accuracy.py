"""Accuracy of every method on heterogeneous pairs in a low-data Fashion-MNIST regime, and FOFA's ablations.

Usage: python benchmarks/accuracy.py [--seeds 3] [--work DIR] [--out benchmarks/results]

Students see the first 10k images of the training split, validation is 2k images held out of that split, and
test accuracy is measured on the full 10k test set. Each teacher family (CNN, ViT, MLP-Mixer) is trained once on
the same 10k images for longer than the students and cached. Every (pair, method, seed) is one `fofakd distill`
run through the public API; finished runs are skipped, so an interrupted benchmark resumes where it stopped.

Models are sized for 2 CPU cores at 28 px: 7x7 patches (16 tokens) for the ViT and Mixer, a half-width
resnet10t as the CNN teacher and a quarter-width one as the CNN student. The FOFA ablation ladder and its
variants run on CNN -> ViT; defaults are chosen by mean validation top-1 (the test set is only reported).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from fofakd.engine.config import build_config
from fofakd.engine.trainer import run

TEACHERS = {
    "CNN": {"name": "resnet10t", "kwargs": {"channels": [32, 64, 128, 256], "stem_width": 16}},
    "ViT": {"name": "vit_tiny_patch16_224",
            "kwargs": {"patch_size": 7, "embed_dim": 128, "depth": 6, "num_heads": 4}},
    "Mixer": {"name": "mixer_s4_32", "kwargs": {"patch_size": 7, "embed_dim": 192, "num_blocks": 6}},
}
STUDENTS = {
    "CNN": {"name": "resnet10t", "kwargs": {"channels": [16, 32, 64, 128], "stem_width": 8}},
    "ViT": {"name": "vit_tiny_patch16_224", "kwargs": {"patch_size": 7, "embed_dim": 96, "depth": 4, "num_heads": 3}},
    "Mixer": {"name": "mixer_s4_32", "kwargs": {"patch_size": 7, "embed_dim": 128, "num_blocks": 4}},
}
PAIRS = [("CNN", "ViT"), ("CNN", "Mixer"), ("ViT", "CNN"), ("Mixer", "CNN")]
FOFA = {"dim": 128}  # RAA width scaled to the small students (the paper's 512 suits 224 px)
METHODS = {"scratch": {}, "kd": {}, "dkd": {}, "dist": {}, "fitnet": {}, "ofa": {}, "fofa": FOFA}
ABLATION_PAIR = ("CNN", "ViT")
ABLATIONS = {
    "features only (no RAA, no AFP)": {**FOFA, "use_raa": False, "afp_stages": []},
    "+ RAA": {**FOFA, "afp_stages": []},
    "+ AFP without feedback": {**FOFA, "use_feedback": False},
    "full FOFA": FOFA,
    "full FOFA, se_mode=gate": {**FOFA, "se_mode": "gate"},
    "full FOFA, pos_embed=reference": {**FOFA, "pos_embed": "reference"},
}
DATA = {"train_subset": 10000, "val_subset": 2000, "val_fraction": 0.1}
RECIPE = {"batch_size": 128, "opt": "adamw", "lr": 2e-3, "weight_decay": 0.05, "smoothing": 0.1,
          "eval_batch_size": 500}


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """Everything that changes a run's result; its hash names the work folder so stale runs are never reused."""
    return {"teachers": TEACHERS, "students": STUDENTS, "data": DATA, "recipe": RECIPE,
            "teacher_epochs": args.teacher_epochs, "epochs": args.epochs}


def train_teacher(kind: str, work: Path, args: argparse.Namespace) -> Path:
    folder = work / "teachers" / kind
    if not (folder / "summary.json").is_file():
        spec = TEACHERS[kind]
        run(build_config({**DATA, **RECIPE, "model": spec["name"], "model_kwargs": spec["kwargs"], "seed": 0,
                          "epochs": args.teacher_epochs, "out": str(folder), "overwrite": True}), "train")
    return folder


def distil(pair: tuple[str, str], method: str, options: dict, seed: int, folder: Path, work: Path,
           args: argparse.Namespace) -> dict[str, Any]:
    if not (folder / "summary.json").is_file():
        spec = STUDENTS[pair[1]]
        run(build_config({**DATA, **RECIPE, "student": spec["name"], "student_kwargs": spec["kwargs"],
                          "teacher_checkpoint": str(work / "teachers" / pair[0]), "method": method,
                          "method_options": options, "seed": seed, "epochs": args.epochs, "out": str(folder),
                          "overwrite": True}), "distill")
    summary = json.loads((folder / "summary.json").read_text())
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {"seed": seed, "test_top1": summary["test_top1"], "val_top1": rows[-1]["val_top1"],
            "train_time_s": summary["train_time_s"], "extra_parameters": summary.get("extra_parameters", 0)}


def ablation_folder(work: Path, name: str, seed: int) -> Path:
    """Full FOFA shares the main table's runs; every other ablation has its own folder."""
    if ABLATIONS[name] is FOFA:
        return work / f"{ABLATION_PAIR[0]}-{ABLATION_PAIR[1]}" / "fofa" / f"seed{seed}"
    slug = "".join(c if c.isalnum() else "_" for c in name).strip("_")
    return work / "ablations" / slug / f"seed{seed}"


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def stats(key: str) -> tuple[float, float]:
        values = [r[key] for r in runs]
        return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    (test, test_sd), (val, val_sd) = stats("test_top1"), stats("val_top1")
    return {"test_mean": test, "test_std": test_sd, "val_mean": val, "val_std": val_sd,
            "train_time_s": statistics.mean(r["train_time_s"] for r in runs),
            "extra_parameters": runs[0]["extra_parameters"], "runs": runs}


def pair_name(pair: tuple[str, str]) -> str:
    return f"{pair[0]} -> {pair[1]}"


def cell(row: dict[str, Any]) -> str:
    return f"{row['test_mean']:.2f} ± {row['test_std']:.2f}"


def markdown(results: dict[str, Any]) -> str:
    teachers = results["teachers"]
    lines = ["# Accuracy on heterogeneous pairs (Fashion-MNIST, low-data regime)", "",
             f"Command: `{results['command']}`  ", f"Machine: {results['machine']}  ",
             f"Wall time: {results['wall_time_s'] / 60:.0f} min from the first teacher's start to the last run's end "
             f"({results['runs']} runs).", "",
             "Students train on 10k training images for "
             f"{results['settings']['epochs']} epochs; teachers on the same images for "
             f"{results['settings']['teacher_epochs']} epochs. Test top-1 (%) on the full 10k test set, mean ± "
             "standard deviation over seeds.", "",
             "| teacher | model | test top-1 (%) |", "|---|---|---|"]
    for kind, top1 in teachers.items():
        lines.append(f"| {kind} | {TEACHERS[kind]['name']} {TEACHERS[kind]['kwargs']} | {top1:.2f} |")
    lines += ["", "Students: " + "; ".join(f"{k}: {v['name']} {v['kwargs']}" for k, v in STUDENTS.items()) + ".", ""]
    pairs = list(results["main"])
    lines += ["| method | " + " | ".join(pairs) + " | mean gain over scratch |",
              "|---" * (len(pairs) + 2) + "|"]
    for method in METHODS:
        gains = [results["main"][p][method]["test_mean"] - results["main"][p]["scratch"]["test_mean"] for p in pairs]
        lines.append(f"| {method} | " + " | ".join(cell(results["main"][p][method]) for p in pairs)
                     + f" | {statistics.mean(gains):+.2f} |")
    lines += ["", f"FOFA ablations on {pair_name(ABLATION_PAIR)}, {results['ablation_seeds']} seeds (validation "
              "decides defaults; test is reported):", "",
              "| variant | val top-1 (%) | test top-1 (%) | train time (s) | extra parameters |",
              "|---|---|---|---|---|"]
    for name, row in results["ablations"].items():
        lines.append(f"| {name} | {row['val_mean']:.2f} ± {row['val_std']:.2f} | {cell(row)} | "
                     f"{row['train_time_s']:.0f} | {row['extra_parameters'] / 1e6:.2f} M |")
    choices = results["defaults_by_validation"]
    lines += ["", "Defaults chosen on validation top-1 (a default changes only when the alternative's mean is higher "
              "by more than the larger standard deviation over seeds): " + "; ".join(
                  f"`{key}`: **{c['chosen']}** (" + ", ".join(
                      f"{k} {v:.2f} ± {c['val_std'][k]:.2f}" for k, v in c["val_mean"].items()) + ")"
                  for key, c in choices.items()) + ".", "",
        "Notes: fp32 throughout (bf16 autocast measured 10-30x slower on this CPU, which has no native bf16). Each "
        "seed draws its own 10k training images and validation split (both carved with the seed); the teachers use "
        "seed 0's. Train times are per run and include other load on the machine during the benchmark. "
        + results.get("note", ""), "",
        "![accuracy](accuracy.png)", ""]
    return "\n".join(lines)


def defaults_by_validation(ablations: dict[str, Any]) -> dict[str, Any]:
    """FOFA's squeeze-excitation and positional-encoding modes, picked on validation top-1.

    The current default (listed first) stays unless the alternative's mean beats it by more than the larger of the
    two standard deviations over seeds: a smaller gap is within seed noise.
    """
    rows = {"se_mode": {"bias": ablations["full FOFA"], "gate": ablations["full FOFA, se_mode=gate"]},
            "pos_embed": {"fixed": ablations["full FOFA"], "reference": ablations["full FOFA, pos_embed=reference"]}}
    out = {}
    for key, modes in rows.items():
        (current, a), (alternative, b) = modes.items()
        better = b["val_mean"] - a["val_mean"] > max(a["val_std"], b["val_std"])
        out[key] = {"val_mean": {m: r["val_mean"] for m, r in modes.items()},
                    "val_std": {m: r["val_std"] for m, r in modes.items()},
                    "chosen": alternative if better else current}
    return out


def elapsed(work: Path) -> float:
    """From the first teacher's start to the last run's end, so a resumed benchmark reports its whole span."""
    starts = [p.stat().st_mtime for p in work.glob("teachers/*/config.yaml")]
    ends = [p.stat().st_mtime for p in work.rglob("summary.json")]
    return max(ends) - min(starts)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(pair, results["main"][pair]) for pair in results["main"]]
    panels.append((f"FOFA ablations, {pair_name(ABLATION_PAIR)}", results["ablations"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2))
    for ax, (title, rows) in zip(axes, panels):
        names = list(rows)
        means = [rows[n]["test_mean"] for n in names]
        ax.bar(range(len(names)), means, yerr=[rows[n]["test_std"] for n in names], capsize=3,
               color=["#d08c60" if n.startswith(("fofa", "full")) else "#7aa6c2" for n in names])
        for i, n in enumerate(names):
            ax.scatter([i] * len(rows[n]["runs"]), [r["test_top1"] for r in rows[n]["runs"]], color="k", s=6,
                       zorder=3)
        low = min(r["test_top1"] for n in names for r in rows[n]["runs"])
        high = max(r["test_top1"] for n in names for r in rows[n]["runs"])
        ax.set_ylim(low - 2, high + 1.5)
        ax.set_xticks(range(len(names)), [n.replace(" (", "\n(").replace(", ", "\n") for n in names], rotation=60,
                      ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("test top-1 (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2, help="student epochs")
    parser.add_argument("--teacher-epochs", type=int, default=5)
    parser.add_argument("--work", default=os.environ.get("TMPDIR", "/tmp") + "/fofakd-accuracy",
                        help="where run directories (and cached teachers) go")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--ablation-seeds", type=int, help="seeds of the FOFA ablations (default: --seeds)")
    parser.add_argument("--note", default="", help="a sentence about this run's circumstances for the report")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(os.cpu_count() or 1)
    start = time.perf_counter()
    config = settings(args)
    work = Path(args.work) / hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
    teachers = {}
    for kind in TEACHERS:
        folder = train_teacher(kind, work, args)
        teachers[kind] = json.loads((folder / "summary.json").read_text())["test_top1"]
    seeds = range(args.seeds)
    ablation_seeds = range(args.ablation_seeds if args.ablation_seeds is not None else args.seeds)
    main_table: dict[str, dict[str, Any]] = {}
    for seed in seeds:  # seed-major order: a partial benchmark already covers every cell once
        for pair in PAIRS:
            for method, options in METHODS.items():
                folder = work / f"{pair[0]}-{pair[1]}" / method / f"seed{seed}"
                main_table.setdefault(pair_name(pair), {}).setdefault(method, []).append(
                    distil(pair, method, options, seed, folder, work, args))
                print(f"[{(time.perf_counter() - start) / 60:.1f} min] {pair_name(pair)} {method} seed {seed}: "
                      f"{main_table[pair_name(pair)][method][-1]['test_top1']:.2f}", flush=True)
        for name, options in ABLATIONS.items() if seed in ablation_seeds else ():
            distil(ABLATION_PAIR, "fofa", options, seed, ablation_folder(work, name, seed), work, args)
            print(f"[{(time.perf_counter() - start) / 60:.1f} min] ablation {name} seed {seed}", flush=True)
    ablations = {name: aggregate([distil(ABLATION_PAIR, "fofa", options, s, ablation_folder(work, name, s), work,
                                         args) for s in ablation_seeds]) for name, options in ABLATIONS.items()}
    results = {
        "command": "python benchmarks/accuracy.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
                   f"torch {torch.__version__}, fp32",
        "wall_time_s": elapsed(work), "seeds": args.seeds,
        "ablation_seeds": len(ablation_seeds),
        "runs": (args.seeds * len(PAIRS) * len(METHODS) + len(ablation_seeds) * (len(ABLATIONS) - 1)
                 + len(TEACHERS)),
        "settings": config, "teachers": teachers,
        "main": {p: {m: aggregate(runs) for m, runs in rows.items()} for p, rows in main_table.items()},
        "ablations": ablations, "defaults_by_validation": defaults_by_validation(ablations), "note": args.note,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "accuracy.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "accuracy.md").write_text(markdown(results))
    plot(results, out / "accuracy.png")
    print(f"wrote {out / 'accuracy.md'}")


if __name__ == "__main__":
    main()
