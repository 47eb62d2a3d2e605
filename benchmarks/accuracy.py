"""Accuracy of every method on heterogeneous pairs in a representative low-data regime, and FOFA's investigation.

Usage: python benchmarks/accuracy.py [--seeds 3] [--investigation-seeds 1] [--confirm VARIANTS] [--threads N]
       [--pairs ResNet-ViT,...] [--retrain-teachers] [--only-teachers] [--report-only]

The regime is defined in `matched.py`. Every run goes through `regime.distil`, which makes it with `fofakd
compare`'s machinery (one comparison folder per pair and label, one run directory per seed) and appends its record
to benchmarks/results/accuracy_runs.jsonl (keyed by the regime's settings), so an interrupted benchmark resumes
where it stopped, on this machine or a fresh clone; a run cut short mid-way resumes from its own checkpoint when
its work folder is still there. The report is written from the records.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from accuracy_report import write_report
from matched import INVESTIGATION_PAIR, MATCHED, METHODS, PAIRS, VARIANTS, geometry
from regime import RESULTS, distil, ensure_teacher, load_records

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--investigation-seeds", type=int, default=1,
                        help="seeds for the investigation's variants (a screen; a variant that beats full FOFA on "
                             "validation by more than the noise margin is then confirmed with --seeds)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads")
    parser.add_argument("--work", default=str(Path.home() / ".cache" / "fofakd" / "accuracy"),
                        help="where run directories go (a cut-short run resumes from its checkpoint there)")
    parser.add_argument("--retrain-teachers", action="store_true", help="train the teachers again and ship them")
    parser.add_argument("--only-teachers", action="store_true", help="make sure the teachers exist, then stop")
    parser.add_argument("--report-only", action="store_true", help="write the report from the records so far")
    parser.add_argument("--pairs", help="only these pairs, e.g. ResNet-ViT,ResNet-MLP (default: all)")
    parser.add_argument("--confirm", type=lambda s: s.split(","), default=[],
                        help="investigation variants to run with every seed, e.g. 'fd_weight=0.3'")
    parser.add_argument("--only", type=lambda s: s.split(","), default=[],
                        help="run only these labels (methods or variants), e.g. to share the work between processes")
    parser.add_argument("--note", default=None,
                        help="text for the report's closing section (default: benchmarks/accuracy_note.md)")
    args = parser.parse_args()
    if args.note is None:
        note_file = HERE / "accuracy_note.md"
        args.note = note_file.read_text().strip() if note_file.is_file() else ""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    RESULTS.mkdir(parents=True, exist_ok=True)
    pairs = [p for p in PAIRS if not args.pairs or f"{p[0]}-{p[1]}" in args.pairs.split(",")]
    for kind in dict.fromkeys(t for t, _ in pairs):
        if not args.report_only:
            ensure_teacher(MATCHED, kind, work, args.retrain_teachers)
    if args.only_teachers:
        return
    records = load_records(MATCHED)
    start = time.perf_counter()
    for seed in range(args.seeds if not args.report_only else 0):
        jobs = [(pair, method, options, method) for pair in pairs for method, options in METHODS.items()]
        jobs += [(INVESTIGATION_PAIR, "fofa", options, name) for name, options in VARIANTS.items()
                 if name != "full FOFA" and INVESTIGATION_PAIR in pairs
                 and (seed < args.investigation_seeds or name in args.confirm)]
        for pair, method, options, label in jobs:
            if args.only and label not in args.only:
                continue
            record = distil(MATCHED, pair, method, options, seed, label, work, records)
            print(f"[{(time.perf_counter() - start) / 60:.1f} min] {pair[0]} -> {pair[1]} {label} seed {seed}: "
                  f"test {record['test_top1']:.2f} val {record['val_top1']:.2f}", flush=True)
    write_report(records, geometry(), args)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
