"""@task keeps the function's signature for type checkers: mypy accepts typed_ok.py and reports
exactly the errors marked in typed_errors.py."""

import re
from pathlib import Path

import pytest
from mypy import api

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
MARK = re.compile(r"#\s*E:\s*((?:[a-z-]+\s*)+)")
ERROR = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[\w-]+)\]$")

pytestmark = [pytest.mark.any_broker, pytest.mark.any_database]


def _expected(path: Path) -> set[tuple[str, int, str]]:
    return {(path.name, number, code)
            for number, line in enumerate(path.read_text().splitlines(), start=1)
            if (match := MARK.search(line)) for code in match.group(1).split()}


def test_mypy_checks_task_calls_against_the_function(tmp_path):
    files = [HERE / "typed_ok.py", HERE / "typed_errors.py"]
    stdout, stderr, _ = api.run(["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(tmp_path),
                                 "--no-error-summary", "--hide-error-context", *map(str, files)])
    assert not stderr, stderr
    found = {(Path(m["path"]).name, int(m["line"]), m["code"])
             for m in map(ERROR.match, stdout.splitlines()) if m}
    unparsed = [line for line in stdout.splitlines() if not ERROR.match(line) and ": note:" not in line]
    assert not unparsed, stdout
    assert found == _expected(files[1]), stdout
