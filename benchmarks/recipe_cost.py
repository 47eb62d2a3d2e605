"""Expected GPU-hours of every shipped recipe, from counted FLOPs calibrated on the reference's reported epoch times.

Usage: python benchmarks/recipe_cost.py [--out benchmarks/results]

For each (pair, method) one training step at 224 px (batch 2, reported per image) runs under torch's FlopCounterMode
on the meta device: forward and backward of every module the method adds, counted from shapes without computing.
The reference reports, for ConvNeXt-T -> DeiT-T on CIFAR-100 (50k images), 65.8 s per epoch with KD and 208.6 s
with FOFA; those two anchors give the effective FLOP/s of its hardware, and a run's hours are epochs x images x
FLOPs per image / that rate. The reference runs its prompts' convolutions at full resolution, so the FOFA anchor is
counted that way ("fofa-convs"); fofakd's FOFA is counted with the window-sum shortcut. The ratio of the two
anchors' FLOPs against their ratio of times (3.17) shows how far FLOPs predict time.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import timm.models._builder
import torch
from torch.utils.flop_counter import FlopCounterMode

import fofakd
from fofakd.recipes import METHOD_OPTIONS, MODELS, PAIRS, RECIPES, recipe_family

IMAGES = {"cifar100": 50_000, "imagenet": 1_281_167}
CLASSES = {"cifar100": 100, "imagenet": 1000}
REFERENCE = {"pair": ("convnext_t", "deit_t"), "dataset": "cifar100", "epoch_s": {"kd": 65.8, "fofa": 208.6}}


COUNTED = [*METHOD_OPTIONS, "fofa-convs"]  # "fofa-convs": FOFA's prompts through their convolutions, as the reference


def step_flops(teacher: torch.nn.Module, student: torch.nn.Module, method: str) -> int:
    base = method.removesuffix("-convs")
    distiller = fofakd.build_distiller(base, teacher=teacher, student=student, input_size=(3, 224, 224),
                                       **METHOD_OPTIONS[base]).train()
    for module in distiller.modules():
        if method.endswith("-convs") and hasattr(module, "use_window_sums"):
            module.use_window_sums = False
    x, y = torch.randn(2, 3, 224, 224), torch.tensor([0, 1])
    distiller(x, y)  # FOFA's first step has no feedback yet; count a step that fuses it
    with FlopCounterMode(display=False) as counter:
        distiller(x, y)["loss"].backward()
    return counter.get_total_flops() // 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    timm.models._builder.load_pretrained = lambda *a, **k: None  # FLOPs need no weights
    start = time.perf_counter()
    flops: dict[str, dict[str, dict[str, int]]] = {}
    for dataset, pairs in PAIRS.items():
        for teacher_key, student_key in pairs:
            with torch.device("meta"):
                teacher = fofakd.create_model(MODELS[teacher_key][0], num_classes=CLASSES[dataset])
                student = fofakd.create_model(MODELS[student_key][0].split(".")[0], num_classes=CLASSES[dataset])
                flops.setdefault(dataset, {})[f"{teacher_key}-{student_key}"] = {
                    m: step_flops(teacher, student, m) for m in COUNTED}
            print(f"{dataset} {teacher_key}-{student_key}: {flops[dataset][f'{teacher_key}-{student_key}']}",
                  flush=True)
    anchor = flops[REFERENCE["dataset"]]["-".join(REFERENCE["pair"])]
    anchor_flops = {"kd": anchor["kd"], "fofa": anchor["fofa-convs"]}
    rates = {m: anchor_flops[m] * IMAGES[REFERENCE["dataset"]] / s for m, s in REFERENCE["epoch_s"].items()}
    rate = statistics.mean(rates.values())
    hours: dict[str, dict[str, dict[str, float]]] = {}
    for dataset, pairs in flops.items():
        for pair, per_method in pairs.items():
            epochs = RECIPES[(dataset, recipe_family(MODELS[pair.split("-")[1]][1]))]["epochs"]
            hours.setdefault(dataset, {})[pair] = {
                m: epochs * IMAGES[dataset] * f / rate / 3600 for m, f in per_method.items()}
    results = {
        "command": "python benchmarks/recipe_cost.py " + " ".join(sys.argv[1:]),
        "torch": torch.__version__, "wall_time_s": time.perf_counter() - start,
        "flops_per_image": flops, "effective_flop_per_s": rate, "anchor_rates": rates,
        "predicted_fofa_over_kd": anchor["fofa-convs"] / anchor["kd"],
        "fofakd_fofa_over_kd": anchor["fofa"] / anchor["kd"],
        "reported_fofa_over_kd": REFERENCE["epoch_s"]["fofa"] / REFERENCE["epoch_s"]["kd"], "gpu_hours": hours,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe_cost.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["# Expected GPU-hours per recipe run", "", f"Command: `{results['command']}`", "",
             f"Effective rate of the reference's hardware: {rate / 1e12:.1f} TFLOP/s (KD anchor "
             f"{rates['kd'] / 1e12:.1f}, FOFA anchor {rates['fofa'] / 1e12:.1f}); FLOPs predict FOFA / KD = "
             f"{results['predicted_fofa_over_kd']:.2f} where the reference reports "
             f"{results['reported_fofa_over_kd']:.2f}; fofakd's FOFA, with the window-sum shortcut, counts "
             f"{results['fofakd_fofa_over_kd']:.2f}x KD's FLOPs on that pair. The `fofa-convs` column is FOFA with "
             "its prompts' convolutions at full resolution, as the reference runs them.", ""]
    methods = COUNTED
    for dataset, pairs in hours.items():
        lines += [f"## {dataset}", "", "| pair | GFLOPs per image (" + ", ".join(methods) + ") | "
                  + " | ".join(f"{m} h" for m in methods) + " |", "|---" * (len(methods) + 2) + "|"]
        for pair, per_method in pairs.items():
            g = ", ".join(f"{flops[dataset][pair][m] / 1e9:.1f}" for m in methods)
            lines.append(f"| {pair} | {g} | " + " | ".join(f"{per_method[m]:.0f}" for m in methods) + " |")
        lines.append("")
    (out / "recipe_cost.md").write_text("\n".join(lines))
    print(f"wrote {out / 'recipe_cost.md'}")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
