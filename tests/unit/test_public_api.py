"""``import cvpipe``: the documented API, lazy (no TensorFlow, no kfp on import) and typed (mypy checks a user's script)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cvpipe
from components.core import errors

REPO = Path(__file__).resolve().parents[2]

_MYPY_INI = """
[mypy]
strict = True
ignore_missing_imports = True
# the libraries under cvpipe (TensorFlow, kfp, aiplatform) are not what is checked here
follow_imports = skip

[mypy-cvpipe.*,components.*,pipelines.*]
follow_imports = silent
"""

_USER_SCRIPT = """
from pathlib import Path

import cvpipe


def main() -> None:
    spec: cvpipe.PipelineSpec = cvpipe.load_spec("spec.yaml")
    compiled: Path = cvpipe.compile(spec, "pipeline.yaml", until="train", pipeline="training")
    summary: cvpipe.RunSummary = cvpipe.run_local(spec, until="ingest", base_dir=".")
    runner: cvpipe.Runner = cvpipe.KubeflowRunner("http://localhost:8080", experiment="nightly")
    run: cvpipe.SubmittedRun = cvpipe.submit(spec, runner, until="train")
    print(compiled, summary.succeeded, run.state)
    try:
        cvpipe.load_spec("other.yaml")
    except cvpipe.SpecError as e:
        print(e.problems)
"""

_WRONG_SCRIPT = """
import cvpipe

spec = cvpipe.load_spec("spec.yaml")
count: int = cvpipe.compile(spec, "pipeline.yaml", untill="train")
cvpipe.run_local("spec.yaml")
"""


def test_import_cvpipe_loads_neither_tensorflow_nor_kfp() -> None:
    code = (
        "import sys, cvpipe\n"
        "assert 'tensorflow' not in sys.modules and 'kfp' not in sys.modules\n"
        "spec = cvpipe.parse_spec({'name': 'x', 'task': 'detection', 'data': {'source': 'a.json'}})\n"
        "assert isinstance(spec, cvpipe.PipelineSpec) and cvpipe.run_local.__module__ == 'pipelines.runners.local'\n"
        "assert 'tensorflow' not in sys.modules and 'kfp' not in sys.modules, sorted(m for m in sys.modules if 'tensorflow' in m)[:3]\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_every_public_name_resolves_and_the_error_tree_is_whole() -> None:
    assert set(cvpipe.__all__) == set(cvpipe._EXPORTS)
    for name in cvpipe.__all__:
        assert getattr(cvpipe, name) is not None, name
    assert set(errors.__all__) <= set(cvpipe.__all__)
    assert cvpipe.compile.__name__ == "compile_spec" and issubclass(cvpipe.SpecError, cvpipe.CvpipeError)
    assert "run_local" in dir(cvpipe)


def _mypy(tmp_path: Path, script: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "mypy.ini").write_text(_MYPY_INI)
    (tmp_path / "user.py").write_text(script)
    env = {"PATH": "/usr/bin:/bin", "MYPYPATH": str(REPO)}
    cmd = [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "--cache-dir", str(tmp_path / ".cache"), "user.py"]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def test_mypy_checks_a_user_script_against_the_real_signatures(tmp_path: Path) -> None:
    (tmp_path / "good").mkdir()
    (tmp_path / "wrong").mkdir()
    good = _mypy(tmp_path / "good", _USER_SCRIPT)
    assert good.returncode == 0, good.stdout + good.stderr
    wrong = _mypy(tmp_path / "wrong", _WRONG_SCRIPT)
    assert wrong.returncode == 1
    assert 'Unexpected keyword argument "untill" for "compile_spec"' in wrong.stdout
    assert 'variable has type "int"' in wrong.stdout
    assert 'Argument 1 to "run_local" has incompatible type "str"; expected "PipelineSpec"' in wrong.stdout


def test_step_data_and_monitoring_modules_import_without_tensorflow_and_export_what_they_list() -> None:
    code = (
        "import sys, importlib\n"
        "for name in ('cvpipe.steps', 'cvpipe.data', 'cvpipe.monitoring', 'cvpipe.models'):\n"
        "    m = importlib.import_module(name)\n"
        "    missing = [n for n in m.__all__ if getattr(m, n, None) is None]\n"
        "    assert not missing, (name, missing)\n"
        "assert 'tensorflow' not in sys.modules, sorted(m for m in sys.modules if 'tensorflow' in m)[:3]\n"
        "from cvpipe.steps import validate, train\n"
        "assert validate.__module__ == 'components.validate.core' and train.__module__ == 'components.train.core'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def _python_blocks(text: str) -> list[str]:
    blocks, inside, current = [], False, []
    for line in text.splitlines():
        if line.strip().startswith("```"):
            if inside:
                blocks.append("\n".join(current))
                current = []
            inside = line.strip() == "```python" and not inside
            continue
        if inside:
            current.append(line)
    return blocks


def test_readme_docs_and_demo_import_only_cvpipe() -> None:
    # The rule: users are taught one API. Code blocks in the README and docs, and the demo
    # (what a newcomer reads first), import `cvpipe` and never the `components`/`pipelines` internals.
    offenders = []
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    for page in pages:
        if page.name == "architecture.md":  # draws the internal layers on purpose
            continue
        for block in _python_blocks(page.read_text()):
            for line in block.splitlines():
                s = line.strip()
                if s.startswith(("from components", "import components", "from pipelines", "import pipelines")):
                    offenders.append(f"{page.relative_to(REPO)}: {s}")
    for demo in ("pipelines/demo.py", "pipelines/demo_ce.py"):
        for line in (REPO / demo).read_text().splitlines():
            s = line.strip()
            if s.startswith(("from components", "import components")):
                offenders.append(f"{demo}: {s}")
    assert not offenders, "\n".join(offenders)
