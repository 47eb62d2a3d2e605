"""Every import of a fofakd module inside fofakd names a module and a name that exist, including the imports made
inside functions, which run only on their command's path (a moved module once broke `fofakd detect` this way)."""
import ast
import importlib
import importlib.util
from pathlib import Path

SRC = Path(__file__).parents[1] / "src"


def _fofakd_imports():
    """(file, line, module, names) of every `from ... import ...` of a fofakd module in the package."""
    for path in sorted((SRC / "fofakd").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        package = parts if path.name == "__init__.py" else parts[:-1]
        package = package[:-1] if package[-1] == "__init__" else package
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = list(package[:len(package) - node.level + 1])
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] == "fofakd":
                yield path.relative_to(SRC), node.lineno, module, [a.name for a in node.names]


def test_every_fofakd_import_resolves():
    missing = []
    for path, line, module, names in _fofakd_imports():
        try:
            loaded = importlib.import_module(module)
        except ModuleNotFoundError as err:
            missing.append(f"{path}:{line}: {err}")
            continue
        missing += [f"{path}:{line}: {module} has no {name}" for name in names
                    if not hasattr(loaded, name) and importlib.util.find_spec(f"{module}.{name}") is None]
    assert not missing, "\n".join(missing)


def test_the_check_sees_imports_inside_functions():
    found = {(str(path), module) for path, _, module, _ in _fofakd_imports()}
    assert ("fofakd/detection/cli.py", "fofakd.detection.training") in found
