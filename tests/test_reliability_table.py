"""docs/reliability.md stays true: every mistake row fails as it says, every fault row names a real test."""
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fofakd.cli import main
from sampling import quick_sample

DOC = Path(__file__).parents[1] / "docs" / "reliability.md"
TINY = ["--train-subset", "64", "--val-subset", "32", "--test-subset", "32", "--batch-size", "32",
        "--eval-batch-size", "32", "--epochs", "2", "--lr", "0.002"]


def _tables() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(mistake rows, fault rows) of the document's two tables, cells without their backticks."""
    tables, current = [], None
    for line in DOC.read_text().splitlines():
        if line.startswith("|"):
            cells = [c.strip().strip("`") for c in line.strip("|").split("|")]
            if current is None:
                current = {"header": cells, "rows": []}
                tables.append(current)
            elif not set("".join(cells)) <= set("-: "):
                current["rows"].append(dict(zip(current["header"], cells)))
        else:
            current = None
    return tables[0]["rows"], tables[1]["rows"]


MISTAKES, FAULTS = _tables()


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    root = tmp_path_factory.mktemp("places")
    teacher, kd = root / "teacher", root / "kd"
    assert main(["train", "--model", "resnet10t", "--out", str(teacher), *TINY, "--epochs", "1"]) == 0
    assert main(["distill", "--teacher-checkpoint", str(teacher), "--method", "kd", "--student", "resnet10t",
                 "--out", str(kd), *TINY, "--stop-after", "1"]) == 0
    file = root / "weights.pt"
    file.write_bytes(b"not a run")
    return {"teacher": str(teacher), "kd": str(kd), "file": str(file), **_odd_places(root, teacher)}


def _odd_places(root: Path, teacher: Path) -> dict[str, str]:
    """Folders and files an adversarial user points fofakd at (see the placeholders in docs/reliability.md)."""
    from safetensors.numpy import save_file

    from fofakd.recipes import write_recipes

    foreign = root / "foreign"  # another training tool's run folder
    (foreign / "checkpoints").mkdir(parents=True)
    (foreign / "config.yaml").write_text("model: resnet18\nlr: 0.1\n")
    (foreign / "metrics.jsonl").write_text('{"step": 1, "loss": 2.3}\n')
    (foreign / "checkpoints" / "model_final.pth").write_bytes(b"weights")
    notes = root / "notes"  # a folder of a user's own files, one of them named like a report's
    notes.mkdir()
    (notes / "notes.txt").write_text("my notes\n")
    (notes / "report.md").write_text("# my report\n")
    (root / "student.onnx").write_bytes(b"\x08\x07\x12\x07pytorch")  # the first bytes of an ONNX file
    (root / "truncated.safetensors").write_bytes((teacher / "student.safetensors").read_bytes()[:1000])
    import numpy as np

    save_file({"w": np.zeros(2, dtype=np.float32)}, str(root / "badmeta.safetensors"),
              metadata={"fofakd_spec": "{'model': resnet10t"})
    (root / "dangling.onnx").symlink_to(root / "gone" / "nowhere.onnx")
    other = root / "other"  # a finished run on other data, for the report's grouping
    other.mkdir()
    config = yaml.safe_load((teacher / "config.yaml").read_text())
    (other / "config.yaml").write_text(yaml.safe_dump({**config, "data": "cifar10", "out": str(other)}))
    (other / "metrics.jsonl").write_text((teacher / "metrics.jsonl").read_text())
    (other / "summary.json").write_text((teacher / "summary.json").read_text())
    damaged = root / "damaged"
    shutil.copytree(other, damaged)
    (damaged / "summary.json").write_text('{"test_top1": 7')
    recipes = root / "recipes"
    edited = write_recipes(recipes)[0]
    edited.write_text(edited.read_text() + "# my change\n")
    places = {"foreign": foreign, "notes": notes, "onnx": root / "student.onnx", "dangling": root / "dangling.onnx",
              "truncated": root / "truncated.safetensors", "badmeta": root / "badmeta.safetensors",
              "other": other, "damaged": damaged, "recipes": recipes}
    return {name: str(path) for name, path in places.items()}


def _yaml_files(folder: Path) -> None:
    (folder / "typo.yaml").write_text("learning_rate: 0.1\n")
    (folder / "det.yaml").write_text("task: detection\nmodel: resnet10t\n")
    (folder / "mapping.yaml").write_text("method: kd\nmethod_options: {kd_weight: {a: 1}}\n")
    (folder / "exp.yaml").write_text("lr: 1e-3\nmin_lr: 1e-2\n")  # PyYAML reads 1e-3 as text; fofakd, a number


def _fill(text: str, places: dict[str, str], tmp: Path) -> str:
    return text.format(tmp=tmp, **places)


def _snapshot(*folders: Path) -> dict[str, str]:
    """Every file and link under the folders, by content (a link by its target), hidden files included."""
    return {str(p): os.readlink(p) if p.is_symlink() else hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in folders for p in sorted(Path(folder).rglob("*")) if p.is_file() or p.is_symlink()}


@pytest.mark.parametrize("row", quick_sample(MISTAKES, lambda index, _: index % 8 == 0, [r["case"] for r in MISTAKES]))
def test_each_mistake_gets_its_sentence_and_changes_nothing(row, places, tmp_path, capsys):
    _yaml_files(tmp_path)
    watched = (Path(places["teacher"]).parent, tmp_path)
    before = _snapshot(*watched)
    capsys.readouterr()
    assert main(shlex.split(_fill(row["command"], places, tmp_path))) == 2
    err = capsys.readouterr().err.strip()
    assert _fill(row["message (excerpt)"], places, tmp_path) in err, err
    assert len(err.splitlines()) == 1 and err.startswith("fofakd: error: ")
    assert _snapshot(*watched) == before


@pytest.mark.slow
def test_early_mistakes_fail_before_torch_is_imported(places, tmp_path):
    early = [row for row in MISTAKES if row["early"] == "yes"]
    _yaml_files(tmp_path)
    commands = [shlex.split(_fill(row["command"], places, tmp_path)) for row in early]
    script = ("import sys, json\nfrom fofakd.cli import main\n"
              f"codes = [main(c) for c in {commands!r}]\n"
              "print(json.dumps([codes, [m for m in ('torch', 'timm') if m in sys.modules]]))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    codes, loaded = __import__("json").loads(result.stdout.strip().splitlines()[-1])
    assert codes == [2] * len(early) and loaded == [], (codes, loaded, result.stderr)


def test_every_fault_row_names_a_test_that_exists():
    source = "".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    for row in FAULTS:
        for name in re.findall(r"test_\w+", row["test"]):
            assert f"def {name}(" in source, f"docs/reliability.md names {name}, which no test defines"
