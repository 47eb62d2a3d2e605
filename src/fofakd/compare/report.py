"""A comparison's report: per-method results over seeds, paired differences against a reference, a
recommendation chosen on validation only, and the curves and diagnostics of every run."""
from __future__ import annotations

import json
import statistics
from typing import Any

from ..files import write_text
from ..reports.report import read_run, write_report
from .plan import Comparison
from .stats import paired


def _per_method(comparison: Comparison) -> dict[str, dict[str, Any]]:
    """Per method: each finished seed's validation and test top-1, train time, images/s, peak memory and extra
    parameters."""
    out: dict[str, dict[str, Any]] = {}
    for method, seed in comparison.runs():
        folder = comparison.run_dir(method, seed)
        if not (folder / "summary.json").is_file():
            continue
        run = read_run(folder)
        row = out.setdefault(method, {"val": {}, "test": {}, "train_time_s": [], "images_per_s": [], "epochs": None,
                                      "peak_memory_mb": [],
                                      "extra_parameters": run["summary"].get("extra_parameters", 0)})
        row["val"][seed] = run["metrics"][-1]["val_top1"]
        row["test"][seed] = run["summary"]["test_top1"]
        row["train_time_s"].append(run["summary"]["train_time_s"])
        row["images_per_s"].append(statistics.mean(r["train_images_per_s"] for r in run["metrics"]))
        row["epochs"] = run["summary"].get("epochs")
        row["peak_memory_mb"].append(run["summary"].get("peak_memory_mb"))  # None for runs made before it existed
    return out


def _mean_std(values: dict[int, float]) -> tuple[float, float]:
    data = list(values.values())
    return statistics.mean(data), statistics.stdev(data) if len(data) > 1 else 0.0


def summarise(comparison: Comparison) -> dict[str, Any]:
    """Everything results.json holds."""
    rows = _per_method(comparison)
    table = {}
    for method, row in rows.items():
        (val, val_sd), (test, test_sd) = _mean_std(row["val"]), _mean_std(row["test"])
        table[method] = {"seeds": sorted(row["val"]), "val_mean": val, "val_std": val_sd, "test_mean": test,
                         "test_std": test_sd, "val_by_seed": row["val"], "test_by_seed": row["test"],
                         "train_time_s": statistics.mean(row["train_time_s"]),
                         "images_per_s": statistics.mean(row["images_per_s"]),
                         "extra_parameters": row["extra_parameters"], "epochs": row["epochs"],
                         "peak_memory_mb": max(row["peak_memory_mb"]) if None not in row["peak_memory_mb"] else None}
    reference = comparison.reference or (max(table, key=lambda m: table[m]["val_mean"]) if table else None)
    differences = {
        m: {"val": paired(table[m]["val_by_seed"], table[reference]["val_by_seed"]),
            "test": paired(table[m]["test_by_seed"], table[reference]["test_by_seed"])}
        for m in table if reference in table and m != reference}
    return {"methods": table, "reference": reference, "reference_chosen": "given" if comparison.reference else
            "best on validation", "differences": differences, "recommendation": recommend(table),
            "runs_expected": len(comparison.runs()), "runs_finished": sum(len(r["seeds"]) for r in table.values())}


def recommend(table: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The best method on mean validation top-1, and the methods within the noise margin of it (their means differ
    by no more than the larger of the two standard deviations over seeds)."""
    if not table:
        return {"best": None, "within_noise": [], "text": "No run has finished yet."}
    best = max(table, key=lambda m: table[m]["val_mean"])
    top = table[best]
    close = [m for m in table if m != best and top["val_mean"] - table[m]["val_mean"]
             <= max(top["val_std"], table[m]["val_std"])]
    seeds = min(len(r["seeds"]) for r in table.values())
    text = f"{best} is best on validation ({top['val_mean']:.2f})"
    if close:
        text += f"; {', '.join(close)} {'is' if len(close) == 1 else 'are'} within noise of it"
    if "scratch" in table and best != "scratch":
        leads = [m for m in [best, *close] if m != "scratch"
                 and table[m]["val_mean"] - table["scratch"]["val_mean"] > max(table[m]["val_std"],
                                                                                 table["scratch"]["val_std"])]
        if leads:
            text += f"; {' and '.join(leads)} {'leads' if len(leads) == 1 else 'lead'} scratch beyond the noise"
    if seeds < 2:
        text += " (one seed: no spread to judge noise by; run more seeds before choosing)"
    return {"best": best, "within_noise": close, "text": text + "."}


def markdown(comparison: Comparison, results: dict[str, Any]) -> str:
    table, epochs = results["methods"], {r["epochs"] for r in results["methods"].values()}
    lines = [f"Runs finished: {results['runs_finished']} of {results['runs_expected']}.", "",
             "| method | seeds | val top-1 (%) | test top-1 (%) | train time (s) | images/s | peak memory (MiB) "
             "| training-only parameters |", "|---|---|---|---|---|---|---|---|"]
    for m, r in table.items():
        memory = f"{r['peak_memory_mb']:.0f}" if r["peak_memory_mb"] is not None else "-"
        lines.append(f"| {m} | {len(r['seeds'])} | {r['val_mean']:.2f} ± {r['val_std']:.2f} | {r['test_mean']:.2f} "
                     f"± {r['test_std']:.2f} | {r['train_time_s']:.0f} | {r['images_per_s']:.0f} | {memory} | "
                     f"{r['extra_parameters'] / 1e6:.2f} M |")
    if results["differences"]:
        lines += ["", f"Paired differences against **{results['reference']}** ({results['reference_chosen']}): "
                  "each method minus the reference, seed by seed (a seed gives every method the same initial student "
                  "and data order), mean and 95 % t interval.", "",
                  "| method | val: per seed | val: mean [95 % interval] | verdict (val) | test: mean [95 % interval] |",
                  "|---|---|---|---|---|"]
        for m, d in results["differences"].items():
            lines.append(f"| {m} | {', '.join(f'{x:+.2f}' for x in d['val']['differences'])} | {_interval(d['val'])} "
                         f"| {d['val']['verdict']} | {_interval(d['test'])} |")
    lines += ["", f"**Recommendation (validation only):** {results['recommendation']['text']}", "",
              f"Each run trained {', '.join(str(e) for e in sorted(epochs, key=str))} epochs. A short budget "
              "can rank methods differently from a long one (methods with large early losses, such as feature "
              "distillation, gain most from a longer schedule); rerun the leaders with your real budget before "
              "settling."]
    return "\n".join(lines)


def _interval(d: dict[str, Any]) -> str:
    if d["mean"] is None:
        return "-"
    return f"{d['mean']:+.2f}" + (f" [{d['interval'][0]:+.2f}, {d['interval'][1]:+.2f}]" if d["interval"] else "")


def write(comparison: Comparison) -> dict[str, Any] | None:
    """report.md, results.json, curves.png, accuracy.png (and FOFA's diagnostics.png) in the comparison's folder,
    from the runs finished so far."""
    finished = [comparison.run_dir(m, s) for m, s in comparison.runs()
                if (comparison.run_dir(m, s) / "summary.json").is_file()]
    if not finished:
        return None
    results = summarise(comparison)
    base = write_report(finished, comparison.out, notes=markdown(comparison, results), show_table=False)
    results = {**base, **results}  # the report's title, data, table and runs, with the comparison's statistics
    write_text(comparison.out / "results.json", json.dumps(results, indent=2) + "\n")
    return results
