"""The accuracy report's per-seed aggregates, and its paired sections: FOFA against every baseline seed by seed, in
the matched regime and in the paper-like regime's confirmation, and the paper-like regime's table, geometry and
ladder."""
from __future__ import annotations

import statistics
from typing import Any

from confirmation import CANDIDATES, PLAIN, TUNING_PAIR, jobs, tuned_label
from internals import final_diagnostics, internals_lines
from paper_like import AUTHORS_FITNET, LADDER, PAIRS, PAPER_LIKE
from regime import geometry, load_records, teacher_index

from fofakd.compare.stats import paired

ORDER = ["scratch", "kd", "dkd", "dist", "fitnet", AUTHORS_FITNET, "ofa", "rsd", "fofa", *CANDIDATES]
FULL_LADDER = [*LADDER, "fofa"]


def by_seed(runs: list[dict[str, Any]], key: str) -> dict[int, float]:
    return {r["seed"]: r[key] for r in runs}


def versus(subject: list[dict[str, Any]], methods: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """`subject` minus each other method, seed by seed, on validation and on test."""
    return {label: {split: paired(by_seed(subject, f"{split}_top1"), by_seed(runs, f"{split}_top1"))
                    for split in ("val", "test")}
            for label, runs in methods.items() if runs is not subject}


def stats(runs: list[dict[str, Any]], key: str) -> tuple[float, float]:
    values = [r[key] for r in runs]
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    (test, test_sd), (val, val_sd) = stats(runs, "test_top1"), stats(runs, "val_top1")
    return {"test_mean": test, "test_std": test_sd, "val_mean": val, "val_std": val_sd, "seeds": len(runs),
            "train_time_s": statistics.mean(r["train_time_s"] for r in runs),
            "extra_parameters": runs[0]["extra_parameters"],
            "runs": [{k: r[k] for k in ("seed", "test_top1", "val_top1", "train_time_s")} for r in runs]}


def group(records: dict[str, dict[str, Any]], pair: str, label: str) -> list[dict[str, Any]]:
    return sorted((r for r in records.values() if r["pair"] == pair and r["label"] == label), key=lambda r: r["seed"])


def grouped(records: dict[str, dict[str, Any]], pair: str, labels: list[str]) -> dict[str, list[dict[str, Any]]]:
    """{label: its runs on `pair`, by seed}, for the labels that have any."""
    return {label: runs for label in labels if (runs := group(records, pair, label))}


def matched_paired(records: dict[str, dict[str, Any]], pairs: list[tuple[str, str]],
                   methods: list[str]) -> dict[str, Any]:
    """The matched regime: FOFA minus each baseline, per pair."""
    out = {}
    for t, s in pairs:
        runs = grouped(records, f"{t} -> {s}", methods)
        if "fofa" in runs:
            out[f"{t} -> {s}"] = versus(runs["fofa"], runs)
    return out


def collect_paper_like(seeds: int = 3) -> dict[str, Any]:
    """Everything accuracy.json holds of the paper-like regime's confirmation."""
    records, teachers, geo = load_records(PAPER_LIKE), teacher_index(PAPER_LIKE), geometry(PAPER_LIKE)
    tuned, expected = tuned_label(), jobs(seeds)
    keys = {job.key for job in expected}
    pairs: dict[str, Any] = {}
    for t, s in PAIRS:
        name = f"{t} -> {s}"
        labels = [label for label in ORDER if any(job.pair == (t, s) and job.label == label for job in expected)]
        runs = grouped(records, name, labels)
        runs = {label: [r for r in rs if r["seed"] < seeds] for label, rs in runs.items()}
        subjects = {label: runs[label] for label in ("fofa", tuned) if label in runs}
        pairs[name] = {
            "teacher": t, "student": s, "teacher_test_top1": teachers[t]["test_top1"],
            "teacher_grids": geo["teachers"][t]["grids"], "student_grids": geo["students"][s]["grids"],
            "steps_per_run": PAPER_LIKE.steps, "train_images": PAPER_LIKE.train_images,
            "methods": {label: aggregate(rs) for label, rs in runs.items()},
            "compute_s": sum(r["train_time_s"] for rs in runs.values() for r in rs),
            "paired": {label: versus(rs, runs) for label, rs in subjects.items()},
            "fofa_diagnostics": {label: final_diagnostics(rs) for label, rs in runs.items()
                                 if rs[0]["method"] == "fofa"}}
    ladder_pair = " -> ".join(TUNING_PAIR)
    ladder_runs = grouped(records, ladder_pair, FULL_LADDER)
    steps = [{"from": a, "to": b, **{split: paired(by_seed(ladder_runs[b], f"{split}_top1"),
                                                   by_seed(ladder_runs[a], f"{split}_top1"))
                                     for split in ("val", "test")}}
             for a, b in zip(FULL_LADDER, FULL_LADDER[1:]) if a in ladder_runs and b in ladder_runs]
    done = keys & records.keys()
    return {"regime": PAPER_LIKE.name, "regime_hash": PAPER_LIKE.hash(), "settings": PAPER_LIKE.settings(),
            "command": "python benchmarks/confirmation.py", "seeds": seeds, "runs": len(done),
            "expected_runs": len(keys),
            "tuned": tuned, "tuning": {"pair": ladder_pair, "seed": 0, "candidates": [*PLAIN, *CANDIDATES]},
            "compute_s": sum(records[key]["train_time_s"] for key in sorted(done)),
            "teachers": teachers, "pairs": pairs,
            "ladder": {"pair": ladder_pair, "methods": {k: aggregate(v) for k, v in ladder_runs.items()},
                       "steps": steps, "diagnostics": {k: final_diagnostics(v) for k, v in ladder_runs.items()}}}


def interval(d: dict[str, Any]) -> str:
    """'+1.23 [-0.40, +2.86], leads' (or the one-seed form)."""
    if d["mean"] is None:
        return "-"
    span = f" [{d['interval'][0]:+.2f}, {d['interval'][1]:+.2f}]" if d["interval"] else ""
    return f"{d['mean']:+.2f}{span} ({len(d['seeds'])}), **{d['verdict']}**"


def paired_lines(name: str, comparisons: dict[str, Any]) -> list[str]:
    lines = [f"| {name} | baseline | val: mean [95 % interval] (seeds), verdict | test: mean [95 % interval] (seeds), "
             "verdict |", "|---|---|---|---|"]
    for pair, against in comparisons.items():
        for label, d in against.items():
            lines.append(f"| {pair} | {label} | {interval(d['val'])} | {interval(d['test'])} |")
    return lines


def grids(g: list[list[int]]) -> str:
    return " / ".join(f"{a}x{b}" for a, b in g)


def cell(row: dict[str, Any] | None, key: str = "test") -> str:
    if row is None:
        return "-"
    seeds = "" if row["seeds"] == 3 else f" ({row['seeds']} seed{'s' if row['seeds'] > 1 else ''})"
    return f"{row[f'{key}_mean']:.2f} ± {row[f'{key}_std']:.2f}{seeds}"


def paper_like_markdown(r: dict[str, Any]) -> list[str]:
    pairs = r["pairs"]
    state = " (complete)." if r["runs"] >= r["expected_runs"] else \
        "; **partial**: the confirmation resumes where it stopped, and cells name their seed count."
    tuned = r["tuned"] or "not chosen yet"
    lines = ["## Paper-like geometry: the three-seed confirmation", "",
             f"Command: `{r['command']}` (regime `{r['regime_hash']}`)  ",
             f"Progress: {r['runs']} of {r['expected_runs']} runs{state}  ",
             f"Compute: {r['compute_s'] / 3600:.2f} h of student training (single-thread runs, two at a time).", "",
             "| pair | teacher test top-1 (%) | teacher stage grids | student stage grids | steps per run | "
             "student training so far (h) |", "|---|---|---|---|---|---|"]
    for name, p in pairs.items():
        lines.append(f"| {name} | {p['teacher_test_top1']:.2f} | {grids(p['teacher_grids'])} | "
                     f"{grids(p['student_grids'])} | {p['steps_per_run']} ({p['train_images']} images) | "
                     f"{p['compute_s'] / 3600:.2f} |")
    lines += ["", f"FOFA's recipe chosen on validation ({r['tuning']['pair']}, seed 0, among "
              f"{', '.join(f'`{c}`' for c in r['tuning']['candidates'])}): **{tuned}**.", "",
              "Validation and test top-1 (%), mean ± standard deviation over seeds.", "",
              "| method | " + " | ".join(f"{n} val | {n} test" for n in pairs) + " |", "|---" * (1 + 2 * len(pairs)) + "|"]
    labels = [label for label in ORDER if any(label in p["methods"] for p in pairs.values())]
    for label in labels:
        lines.append(f"| {label} | " + " | ".join(f"{cell(p['methods'].get(label), 'val')} | "
                                                  f"{cell(p['methods'].get(label), 'test')}" for p in pairs.values())
                     + " |")
    for subject in dict.fromkeys(["fofa", r["tuned"] or "fofa"]):
        lines += ["", f"### {subject} minus each baseline, seed by seed", ""]
        lines += paired_lines("pair", {n: p["paired"][subject] for n, p in pairs.items() if subject in p["paired"]})
    ladder = r["ladder"]
    lines += ["", f"### The ladder on {ladder['pair']}, each step minus the one before, seed by seed", "",
              "| step | val | test |", "|---|---|---|"]
    for step in ladder["steps"]:
        lines.append(f"| {step['from']} -> {step['to']} | {interval(step['val'])} | {interval(step['test'])} |")
    rows = [(f"{name}, {label}", d) for name, p in pairs.items() for label, d in p["fofa_diagnostics"].items()]
    rows += [(f"{ladder['pair']}, {label}", d) for label, d in ladder["diagnostics"].items() if label != "fofa"]
    lines += ["", "### FOFA's internals in the paper-like geometry (last epoch, mean over the seeds run)", "",
              *internals_lines(rows)]
    return lines
