"""gpu_check.md from gpu_check.json's results."""
from __future__ import annotations

from typing import Any


def _fmt(value: Any, spec: str = ".3g") -> str:
    return "-" if value is None else format(value, spec)


def markdown(results: dict[str, Any]) -> str:
    env, goals = results["environment"], results["goals"]
    device = env.get("gpu", f"CPU ({env['cpu']}, {env['cpu_count']} cores)")
    lines = [f"# GPU check{' (smoke run on tiny models)' if results['smoke'] else ''}", "",
             f"Command: `{results['command']}`  ",
             f"Device: {device}" + (f", {env['gpu_memory_gib']} GiB, CUDA {env['cuda']}, cuDNN {env['cudnn']}"
                                    if "gpu" in env else "") + f"; torch {env['torch']}  ",
             "Seconds per section: " + ", ".join(f"{k} {v}" for k, v in results.get("seconds", {}).items()), "",
             "## Goals", "",
             f"- FOFA at most 2.5x KD's {results['spec']['amp'] or 'fp32'} step on every pair: "
             f"**{goals['fofa_within_2_5x_kd']}** ("
             + ", ".join(f"{k} {_fmt(v, '.2f')}x" for k, v in goals["fofa_over_kd"].items())
             + "; the authors report 3.17x per epoch on their GPU).",
             f"- bf16 and fp16 loss parts within tolerance of fp32, gradients finite (fp16: at the scale the scaler "
             "settles on): "
             f"**{goals['precision_within_tolerance']}**.", ""]
    precision = results.get("precision", {})
    if "modes" in precision:
        tol = precision["tolerance"]
        parts = list(precision["modes"]["fp32"]["parts"])
        lines += [f"## Precision: one FOFA step, {precision['pair']}, batch {precision['batch']}", "",
                  f"Tolerance: |part - fp32| <= {tol['rel']} |fp32| + {tol['abs']}.", "",
                  "| mode | " + " | ".join(parts) + " | max rel. diff | within | finite grads (loss scale) |",
                  "|---" * (len(parts) + 4) + "|"]
        for mode, row in precision["modes"].items():
            lines.append(f"| {mode} | " + " | ".join(_fmt(row["parts"][k], ".5g") for k in parts)
                         + f" | {_fmt(row.get('max_rel_diff'))} | {row.get('within_tolerance', '-')} | "
                           f"{row['finite_grads']} ({row['loss_scale']:g}) |")
        s = precision["fp16_scaler"]
        lines += ["", f"fp16 with the gradient scaler, {s['steps']} AdamW steps: scale {s['scale']:g}, "
                      f"{s['skipped_steps']} skipped steps, loss {s['first_loss']:.4g} -> {s['last_loss']:.4g}.", ""]
    for section, title in (("throughput", "eager"), ("compiled", "torch.compile")):
        block = results.get(section, {})
        if not isinstance(block, dict) or block.get("skipped") or "error" in block:
            lines += [f"## Throughput, {title}: {block.get('error', 'skipped')}", ""]
            continue
        for pair, r in block.items():
            amp = results["spec"]["amp"] or "fp32"
            lines += [f"## Throughput, {title}: {pair} ({amp}, channels-last, median of rounds)", "",
                      "| method | step (ms) | images/s | x KD | peak memory (MiB) |", "|---|---|---|---|---|"]
            kd = r["step_s"].get("kd")
            for method, step in r["step_s"].items():
                lines.append(f"| {method} | {step * 1e3:.1f} | {r['images_per_s'][method]:.0f} | "
                             f"{_fmt(step / kd if kd else None, '.2f')} | {_fmt(r['peak_memory_mib'][method], '.0f')} |")
            lines += [f"| {m} | failed: {e} | | | |" for m, e in r["errors"].items()] + [""]
    ddp = results.get("distributed", {})
    lines += ["## Distributed: torchrun, 1 process, killed at step 7 and resumed", "",
              f"Backend {ddp.get('backend', '-')}; killed run exit code {ddp.get('killed_rc', '-')}; the resumed "
              f"run's student equals the uninterrupted one: **{ddp.get('equal', False)}** (largest weight "
              f"difference {_fmt(ddp.get('max_abs_weight_diff'))})." + (f" Error: {ddp['error']}"
                                                                       if "error" in ddp else ""), ""]
    det = results.get("detection", {})
    lines += ["## Detection: one FOFA step of a Faster R-CNN student", "",
              (f"{det['size']} px, {det['step_s']:.2f} s, loss parts finite: **{det['ok']}** ("
               + ", ".join(f"{k} {v:.4g}" for k, v in det["parts"].items()) + ").")
              if "parts" in det else f"Failed: {det.get('error')}", ""]
    return "\n".join(lines)
