"""How long a user waits for the sentence about a mistake: every *early* row of docs/reliability.md, timed.

Usage: python benchmarks/cli_errors.py [--repeats 5] [--out benchmarks/results]

Each row's command runs as a fresh `fofakd` process (the console script, as a user types it) `--repeats` times;
the median wall time from start to exit is reported. The placeholders are filled with stand-ins that are enough
for these checks, which run before any model is built: a teacher folder whose student.json names its model, and
a stopped kd run's folder (config.yaml and an empty checkpoints/).
"""
from __future__ import annotations

import argparse
import json
import platform
import shlex
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
DOC = HERE.parent / "docs" / "reliability.md"


def early_rows() -> list[dict[str, str]]:
    """The first table's rows marked early, cells without their backticks."""
    lines = DOC.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| case | command"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (c.strip().strip("`") for c in line.strip("|").split("|")))))
    return [r for r in rows if r["early"] == "yes"]


def stand_ins(root: Path) -> dict[str, str]:
    teacher, kd = root / "teacher", root / "kd"
    teacher.mkdir()
    (teacher / "student.json").write_text(json.dumps({"model": "resnet10t", "kwargs": {}}))
    (teacher / "student.safetensors").write_bytes(b"")
    (kd / "checkpoints").mkdir(parents=True)
    (kd / "config.yaml").write_text(f"method: kd\nlr: 0.002\nstudent: resnet10t\nteacher_checkpoint: {teacher}\n"
                                    f"out: {kd}\n")
    (root / "file").write_text("not a run")
    (root / "typo.yaml").write_text("learning_rate: 0.1\n")
    (root / "det.yaml").write_text("task: detection\nmodel: resnet10t\n")
    return {"tmp": str(root), "teacher": str(teacher), "kd": str(kd), "file": str(root / "file")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args()
    fofakd = shutil.which("fofakd")
    if fofakd is None:
        raise SystemExit("the fofakd console script is not on PATH; run scripts/setup.sh and activate .venv.")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        places = stand_ins(Path(tmp))
        for row in early_rows():
            command = [fofakd, *shlex.split(row["command"].format(**places))]
            times, outcome = [], None
            for _ in range(args.repeats):
                start = time.perf_counter()
                outcome = subprocess.run(command, capture_output=True, text=True)
                times.append(time.perf_counter() - start)
            results.append({"case": row["case"], "median_s": statistics.median(times), "max_s": max(times),
                            "exit_code": outcome.returncode, "stderr": outcome.stderr.strip()})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"command": f"python benchmarks/cli_errors.py --repeats {args.repeats}", "machine": platform.platform(),
            "cpu_count": __import__("os").cpu_count()}
    (out / "cli_errors.json").write_text(json.dumps({**meta, "results": results}, indent=2) + "\n")
    lines = ["# Time to a mistake's sentence", "",
             f"`{meta['command']}` on {meta['machine']} ({meta['cpu_count']} CPUs). Each command runs as a fresh "
             "`fofakd` process; the time is from start to exit, the median of the repeats. The goal is under 1 s.",
             "", "| case | median (s) | max (s) | exit | message |", "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['case']} | {r['median_s']:.2f} | {r['max_s']:.2f} | {r['exit_code']} | "
                     f"{r['stderr'][:90]}... |")
    slowest = max(r["median_s"] for r in results)
    lines += ["", f"Slowest median: {slowest:.2f} s over {len(results)} cases."]
    (out / "cli_errors.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
