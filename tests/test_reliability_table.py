"""docs/reliability.md stays true: every mistake row fails as it says, every fault row names a real test."""
import hashlib
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from fofakd.cli import main

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
    return {"teacher": str(teacher), "kd": str(kd), "file": str(file)}


def _yaml_files(folder: Path) -> None:
    (folder / "typo.yaml").write_text("learning_rate: 0.1\n")
    (folder / "det.yaml").write_text("task: detection\nmodel: resnet10t\n")


def _fill(text: str, places: dict[str, str], tmp: Path) -> str:
    return text.format(tmp=tmp, **places)


def _snapshot(*folders: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in folders for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.mark.parametrize("row", MISTAKES, ids=[r["case"] for r in MISTAKES])
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
