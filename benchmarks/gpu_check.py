"""GPU readiness in one prepared check: mixed precision, throughput against KD, DDP resume, detection.

Usage: python benchmarks/gpu_check.py [--out DIR] [--smoke] [--rounds N] [--only SECTION,...]

On a CUDA machine the full check (under 8 minutes on one H100) writes gpu_check.json and gpu_check.md to --out:
- environment: GPU, memory, torch, CUDA and cuDNN versions;
- precision: one FOFA step on ConvNeXt-T -> DeiT-T at 224 px in fp32, bf16 autocast and fp16 with the gradient
  scaler, from the same weights, feedback and batch; every loss part must agree with fp32 within TOLERANCE, with
  no inf or NaN in losses or gradients; the fp16 scaler's scale after 20 steps;
- throughput: images/s and peak memory of every method on ConvNeXt-T -> DeiT-T and Swin-T -> ResNet-18 at 224 px,
  batch 128, bf16, channels-last, interleaved rounds (medians), eager and, for KD and FOFA, `torch.compile`;
- distributed: `torchrun --nproc_per_node 1` (NCCL) trains, is killed mid-run, resumes, and must end with the
  weights of an uninterrupted run;
- detection: one FOFA distillation step of a Faster R-CNN student.
Weights are random (the machine has no network): the check measures arithmetic and speed, not accuracy.
`--smoke` runs the same code on the CPU with tiny models, a few steps and no compile (the tests run it).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch

HERE = Path(__file__).parent
METHODS = ["scratch", "kd", "fitnet", "ofa", "rsd", "fofa"]
TOLERANCE = {"rel": 0.05, "abs": 0.02}  # |part - fp32| <= rel * |fp32| + abs, for bf16 and fp16 alike
AUTHORS_FOFA_OVER_KD = 208.57 / 65.75  # seconds per epoch on their GPU, ConvNeXt-T -> DeiT-T
GOAL_FOFA_OVER_KD = 2.5
FULL = {
    "size": 224, "batch": 128, "precision_batch": 32, "rounds": 10, "steps_per_round": 3, "warmup": 3,
    "pairs": {"ConvNeXt-T -> DeiT-T": ("convnext_tiny", {}, "deit_tiny_patch16_224", {}),
              "Swin-T -> ResNet-18": ("swin_tiny_patch4_window7_224", {}, "resnet18", {})},
    "compile": ["kd", "fofa"], "fofa": {}, "amp": "bf16", "scaler_steps": 20, "detection": {"teacher": "resnet50", "student": "resnet18", "size": 512},
}
TINY_VIT = {"patch_size": 4, "embed_dim": 64, "depth": 4, "num_heads": 2}
SMOKE = {
    "size": 32, "batch": 8, "precision_batch": 8, "rounds": 2, "steps_per_round": 1, "warmup": 1,
    "pairs": {"ResNet -> ViT (tiny)": ("resnet10t", {}, "vit_tiny_patch16_224", TINY_VIT),
              "ViT -> ResNet (tiny)": ("vit_tiny_patch16_224", TINY_VIT, "resnet10t", {})},
    # fp32 throughput: bf16 autocast runs 10-30x slower on a CPU (the precision section still runs bf16 and fp16)
    "compile": [], "fofa": {"dim": 64}, "amp": None, "scaler_steps": 3, "detection": {"teacher": "resnet10t", "student": "resnet10t", "size": 64},
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def environment(device: torch.device) -> dict[str, Any]:
    env = {"device": device.type, "torch": torch.__version__, "python": platform.python_version(),
           "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update({"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                    "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()})
    return env


def build(pair: tuple, method: str, size: int, device: torch.device, fofa: dict, seed: int = 0):
    """A distiller of `method` on `pair` with seeded random weights, on `device`, in train mode."""
    import fofakd

    teacher_name, teacher_kwargs, student_name, student_kwargs = pair
    torch.manual_seed(seed)
    teacher = fofakd.create_model(teacher_name, num_classes=100, img_size=size, **teacher_kwargs)
    student = fofakd.create_model(student_name, num_classes=100, img_size=size, **student_kwargs)
    options = fofa if method == "fofa" else {}
    distiller = fofakd.build_distiller(method, teacher=teacher, student=student, input_size=(3, size, size),
                                       **options)
    return distiller.to(device).train()


def make_batch(batch: int, size: int, device: torch.device, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 3, size, size, generator=g).to(device),
            torch.randint(0, 100, (batch,), generator=g).to(device))


def loss_parts(out: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: float(v.detach().float()) for k, v in out.items() if k.startswith("loss")}


def precision(spec: dict, device: torch.device) -> dict[str, Any]:
    """One FOFA step in fp32, bf16 and fp16 (with the scaler) from the same state; 20 fp16 steps for the scale."""
    name, pair = next(iter(spec["pairs"].items()))
    distiller = build(pair, "fofa", spec["size"], device, spec["fofa"])
    images, labels = make_batch(spec["precision_batch"], spec["size"], device)
    distiller(images, labels)["loss"].backward()  # a first step in fp32 leaves feedback, so the fusion path runs
    distiller.zero_grad(set_to_none=True)
    start = copy.deepcopy(distiller.state_dict())
    results: dict[str, Any] = {"pair": name, "batch": spec["precision_batch"], "tolerance": TOLERANCE, "modes": {}}
    for mode, dtype in (("fp32", None), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
        distiller.load_state_dict(start)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            out = distiller(images, labels)
        scale = scaled_backward(distiller, out["loss"], 2.0**16 if mode == "fp16" else 1.0)
        grads = [p.grad for p in distiller.trainable_parameters() if p.grad is not None]
        results["modes"][mode] = {"parts": loss_parts(out), "loss_scale": scale,
                                  "finite_losses": all(math.isfinite(v) for v in loss_parts(out).values()),
                                  "finite_grads": all(bool(torch.isfinite(g).all()) for g in grads)}
    reference = results["modes"]["fp32"]["parts"]
    for mode in ("bf16", "fp16"):
        parts = results["modes"][mode]["parts"]
        results["modes"][mode]["max_rel_diff"] = max(
            abs(parts[k] - v) / max(abs(v), 1e-12) for k, v in reference.items())
        results["modes"][mode]["within_tolerance"] = all(
            abs(parts[k] - v) <= TOLERANCE["rel"] * abs(v) + TOLERANCE["abs"] for k, v in reference.items())
    results["fp16_scaler"] = scaler_run(distiller, start, images, labels, device, spec["scaler_steps"])
    return results


def scaled_backward(distiller, loss: torch.Tensor, scale: float, tries: int = 16) -> float:
    """Gradients of `loss` through a loss scale, halved until they are finite as the fp16 scaler would (it skips
    such a step and halves); returns the scale used. Scale 1 is a plain backward."""
    params = distiller.trainable_parameters()
    for _ in range(tries):
        distiller.zero_grad(set_to_none=True)
        (loss * scale).backward(retain_graph=True)
        grads = [p.grad for p in params if p.grad is not None]
        for g in grads:
            g.div_(scale)
        if scale == 1.0 or all(bool(torch.isfinite(g).all()) for g in grads):
            return scale
        scale /= 2
    return scale


def scaler_run(distiller, start: dict, images, labels, device: torch.device, steps: int) -> dict[str, Any]:
    """AdamW steps in fp16 with the gradient scaler: the scale afterwards and the steps it skipped."""
    distiller.load_state_dict(start)
    optimizer = torch.optim.AdamW(distiller.trainable_parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type)
    skipped, losses = 0, []
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.float16):
            out = distiller(images, labels)
        scaler.scale(out["loss"]).backward()
        before = scaler.get_scale()
        scaler.step(optimizer)
        scaler.update()
        skipped += scaler.get_scale() < before
        losses.append(float(out["loss"].detach()))
    return {"steps": steps, "scale": scaler.get_scale(), "skipped_steps": int(skipped),
            "finite_losses": all(math.isfinite(v) for v in losses), "first_loss": losses[0], "last_loss": losses[-1]}


def train_step(distiller, optimizer, images, labels, amp: torch.dtype | None) -> None:
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(images.device.type, dtype=amp, enabled=amp is not None):
        out = distiller(images, labels)
    out["loss"].backward()
    optimizer.step()


def throughput(spec: dict, device: torch.device, compiled: bool) -> dict[str, Any]:
    """Per pair: median step time, images/s and peak memory of each method, interleaved over rounds."""
    amp = torch.bfloat16 if spec["amp"] == "bf16" else None
    methods = spec["compile"] if compiled else METHODS
    out: dict[str, Any] = {}
    for name, pair in spec["pairs"].items():
        images, labels = make_batch(spec["batch"], spec["size"], device)
        images = images.contiguous(memory_format=torch.channels_last)
        built, errors = {}, {}
        for method in methods:
            try:
                distiller = build(pair, method, spec["size"], device, spec["fofa"])
                distiller.to(memory_format=torch.channels_last)
                if compiled:
                    distiller.student.compile()
                    distiller.teacher.compile()
                optimizer = torch.optim.AdamW(distiller.trainable_parameters(), lr=1e-4,
                                              fused=device.type == "cuda")
                built[method] = (distiller, optimizer, peak_memory(distiller, optimizer, images, labels, amp,
                                                                    spec["warmup"], device))
            except Exception as error:  # a check reports a broken path and goes on
                errors[method] = f"{type(error).__name__}: {error}".splitlines()[0][:300]
                traceback.print_exc()
        samples: dict[str, list[float]] = {m: [] for m in built}
        for _ in range(spec["rounds"]):
            for method, (distiller, optimizer, _) in built.items():
                sync(device)
                start = time.perf_counter()
                for _ in range(spec["steps_per_round"]):
                    train_step(distiller, optimizer, images, labels, amp)
                sync(device)
                samples[method].append((time.perf_counter() - start) / spec["steps_per_round"])
        median = {m: statistics.median(s) for m, s in samples.items()}
        out[name] = {"step_s": median, "images_per_s": {m: spec["batch"] / t for m, t in median.items()},
                     "peak_memory_mib": {m: b[2] for m, b in built.items()},
                     "fofa_over_kd": median["fofa"] / median["kd"] if {"fofa", "kd"} <= set(median) else None,
                     "errors": errors}
        del built
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out


def peak_memory(distiller, optimizer, images, labels, amp, warmup: int, device: torch.device) -> float | None:
    """Warm-up steps (compilation included), measuring the peak memory of the last one."""
    for i in range(warmup):
        if device.type == "cuda" and i == warmup - 1:
            sync(device)
            torch.cuda.reset_peak_memory_stats(device)
        train_step(distiller, optimizer, images, labels, amp)
    if device.type != "cuda":
        return None
    sync(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def distributed(device: torch.device, smoke: bool) -> dict[str, Any]:
    """torchrun with one process: an uninterrupted run, and a run killed by SIGKILL at step 7 (in its second epoch
    of 5 steps) then resumed from its last checkpoint, on a synthetic image folder; both must end with the same
    student."""
    from safetensors.torch import load_file

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = make_image_folder(root / "data")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
               "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")])}
        common = ["--data", "imagefolder", "--data-dir", str(data), "--img-size", "32", "--batch-size", "8",
                  "--epochs", "2", "--val-fraction", "0", "--workers", "0", "--deterministic", "--seed", "3"]
        cli = [sys.executable, "-m", "fofakd.cli"]
        run = lambda args, extra=None: subprocess.run(  # noqa: E731
            args, capture_output=True, text=True, env={**env, **(extra or {})}, timeout=300)
        teacher = root / "teacher"
        first = run([*cli, "train", "--model", "resnet10t", "--out", str(teacher), *common, "--epochs", "1"])
        if first.returncode:
            return {"ok": False, "error": first.stderr[-1500:]}
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
                    "-m", "fofakd.cli", "distill", "--teacher-checkpoint", str(teacher), "--student", "resnet10t",
                    "--method-options", "dim=32", *common]
        whole = run([*torchrun, "--out", str(root / "whole")])
        killed = run([*torchrun, "--out", str(root / "parts")], {"FOFAKD_FAULT": "kill-at-step:7"})
        resumed = run([*torchrun, "--out", str(root / "parts"), "--resume"])
        result = {"backend": "nccl" if device.type == "cuda" else "gloo", "whole_rc": whole.returncode,
                  "killed_rc": killed.returncode, "resumed_rc": resumed.returncode}
        if whole.returncode or resumed.returncode:
            failed = whole if whole.returncode else resumed
            reason = [line for line in failed.stderr.splitlines() if line.startswith("fofakd:")]
            return {**result, "ok": False, "error": (reason[0] if reason else failed.stderr[-1500:])}
        a = load_file(str(root / "whole" / "student.safetensors"))
        b = load_file(str(root / "parts" / "student.safetensors"))
        diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
        return {**result, "max_abs_weight_diff": diff, "equal": diff == 0.0,
                "ok": killed.returncode != 0 and diff == 0.0}


def make_image_folder(root: Path, classes: int = 4, per_class: int = 12) -> Path:
    """Small PNGs in class folders: each class a different bright square on noise."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / "train" / f"class{c}").mkdir(parents=True)
        (root / "val" / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            image = rng.integers(0, 80, (32, 32, 3), dtype=np.uint8)
            image[4 + 5 * c: 12 + 5 * c, 4:12] = 255
            split = "val" if i % 4 == 0 else "train"
            Image.fromarray(image).save(root / split / f"class{c}" / f"{i}.png")
    return root


def detection(spec: dict, device: torch.device) -> dict[str, Any]:
    """One FOFA distillation step of a Faster R-CNN student on the synthetic shapes."""
    from fofakd.detection import CocoDetection, build_detector, collate_detection, make_synthetic_coco
    from fofakd.detection.source import build_detection_distiller

    size = spec["detection"]["size"]
    with tempfile.TemporaryDirectory() as tmp:
        annotations = make_synthetic_coco(tmp, num_images=2, size=size, seed=0)
        data = CocoDetection(Path(tmp) / "images", annotations)
        images, targets = collate_detection([data[i] for i in range(2)])

    def detector(backbone: str):
        return build_detector(backbone, 4, min_size=size, max_size=size, fixed_size=(size, size))

    torch.manual_seed(0)
    distiller = build_detection_distiller("fofa", detector(spec["detection"]["teacher"]),
                                          detector(spec["detection"]["student"]), **spec["fofa"]).to(device).train()
    images = [i.to(device) for i in images]
    targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
    optimizer = torch.optim.SGD(distiller.trainable_parameters(), lr=0.01)
    sync(device)
    start = time.perf_counter()
    out = distiller(images, targets)
    out["loss"].backward()
    optimizer.step()
    sync(device)
    parts = loss_parts(out)
    return {"size": size, "parts": parts, "step_s": time.perf_counter() - start,
            "ok": all(math.isfinite(v) for v in parts.values())}


def timed(results: dict, name: str, fn: Callable[[], Any]) -> None:
    start = time.perf_counter()
    try:
        results[name] = fn()
    except Exception as error:
        traceback.print_exc()
        results[name] = {"ok": False, "error": f"{type(error).__name__}: {error}"[:1500]}
    results.setdefault("seconds", {})[name] = round(time.perf_counter() - start, 1)
    print(f"[{sum(results['seconds'].values()):.0f} s] {name} done", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "results"), help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--smoke", action="store_true", help="tiny models on whatever device, a few steps, no compile")
    parser.add_argument("--rounds", type=int, help="interleaved timing rounds (default: 10, smoke 2)")
    parser.add_argument("--only", help="only these sections: precision,throughput,compiled,distributed,detection")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(HERE.parent / "src"))
    spec = dict(SMOKE if args.smoke else FULL)
    spec["rounds"] = args.rounds or spec["rounds"]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not args.smoke and device.type != "cuda":
        sys.exit("the full check needs a CUDA GPU; on the CPU run it with --smoke.")
    if device.type == "cpu":
        # One thread: beside another busy process, two threads on two cores ran a step 30x slower (measured).
        torch.set_num_threads(1)
    sections = args.only.split(",") if args.only else ["precision", "throughput", "compiled", "distributed",
                                                          "detection"]
    results: dict[str, Any] = {"command": "python " + " ".join([f"benchmarks/{Path(__file__).name}",
                                                               *sys.argv[1:]]),
                               "smoke": args.smoke, "environment": environment(device), "spec": {
                                   k: v for k, v in spec.items() if k != "pairs"}}
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 in the precision comparison
        torch.backends.cudnn.allow_tf32 = False
    jobs = {"precision": lambda: precision(spec, device),
            "throughput": lambda: throughput(spec, device, compiled=False),
            "compiled": lambda: throughput(spec, device, compiled=True) if spec["compile"] else {"skipped": True},
            "distributed": lambda: distributed(device, args.smoke),
            "detection": lambda: detection(spec, device)}
    for name in sections:
        timed(results, name, jobs[name])
    results["goals"] = goals(results)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(results, indent=2) + "\n")
    from gpu_check_report import markdown

    (out / "gpu_check.md").write_text(markdown(results))
    print(f"wrote {out / 'gpu_check.md'}")


def goals(results: dict[str, Any]) -> dict[str, Any]:
    """The issue's goals: FOFA at most 2.5x KD's bf16 step on every pair, fp16 and bf16 within tolerance."""
    ratios = {name: r.get("fofa_over_kd") for name, r in results.get("throughput", {}).items()
              if isinstance(r, dict) and "step_s" in r}
    modes = results.get("precision", {}).get("modes", {})
    return {"fofa_over_kd": ratios,
            "fofa_within_2_5x_kd": all(v is not None and v <= GOAL_FOFA_OVER_KD for v in ratios.values())
            if ratios else None,
            "precision_within_tolerance": all(modes[m].get("within_tolerance") and modes[m]["finite_grads"]
                                              for m in ("bf16", "fp16")) if modes else None}


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
