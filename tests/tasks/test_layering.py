"""`rlhfkit/tasks` sits below the stages: no module in it imports a trainer, the rollout, the
evaluation, a pipeline, an algorithm, the labeling app or the command line (read from the source,
so an import inside a function counts too)."""
import ast
from pathlib import Path

import rlhfkit

PACKAGE = Path(rlhfkit.__file__).parent
FORBIDDEN = ("rlhfkit.train", "rlhfkit.rollout", "rlhfkit.evaluate", "rlhfkit.pipelines", "rlhfkit.algorithms",
             "rlhfkit.feedback", "rlhfkit.cli")


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The forbidden modules an import statement reaches: the module it names, or for `from rlhfkit
    import train` the submodule (relative imports resolved against the importing module's package)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if is_forbidden(a.name)]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[:len(package) - (node.level - 1)]
        base = ".".join(package + ([base] if base else []))
    if is_forbidden(base):
        return [base]
    return [f"{base}.{a.name}" for a in node.names if is_forbidden(f"{base}.{a.name}")]


def forbidden_imports(path: Path, root: Path = PACKAGE.parent) -> list[str]:
    """'FILE:LINE imports MODULE' for each forbidden import of the module at `path` (under `root`)."""
    module = module_name(path, root)
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = sorted((n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))), key=lambda n: n.lineno)
    return [f"{path.relative_to(root)}:{node.lineno} imports {name}"
            for node in nodes for name in imported(node, module, path.name == "__init__.py")]


def test_the_checker_sees_absolute_relative_and_nested_imports(tmp_path):
    fake = tmp_path / "rlhfkit"
    (fake / "tasks" / "toy").mkdir(parents=True)
    source = ("import rlhfkit.cli\nfrom rlhfkit import train\nfrom ...rollout.generate import generate\n"
              "def f():\n    from rlhfkit.evaluate import run\nfrom rlhfkit.data.records import Where\n")
    (fake / "tasks" / "toy" / "mod.py").write_text(source)
    found = forbidden_imports(fake / "tasks" / "toy" / "mod.py", tmp_path)
    # not line 6: rlhfkit.data is below tasks
    assert found == [f"rlhfkit/tasks/toy/mod.py:{n} imports {m}" for n, m in (
        (1, "rlhfkit.cli"), (2, "rlhfkit.train"), (3, "rlhfkit.rollout.generate"), (5, "rlhfkit.evaluate"))]


def test_tasks_import_nothing_above_them():
    files = sorted((PACKAGE / "tasks").rglob("*.py"))
    assert files, "no modules found under rlhfkit/tasks"
    found = [line for path in files for line in forbidden_imports(path)]
    assert not found, "rlhfkit/tasks must not import the stages above it:\n" + "\n".join(found)
