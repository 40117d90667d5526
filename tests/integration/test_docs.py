"""The user documentation against the code: the settings reference lists exactly taskqueue/conf.py's
settings with their defaults, and the examples marked runnable run.

A ```python block right after a line `<!-- run -->` runs eagerly (TASKQUEUE_TASK_ALWAYS_EAGER);
after `<!-- run: queued -->` it runs against the broker (the block drives it with run_queued).
The runnable blocks of one page run in order, in one namespace, as a module named
`docs_examples.<page>` (the tasks they define are registered under that name and forgotten after)."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from pathlib import Path

import pytest

from taskqueue import registry
from taskqueue.conf import Settings

# The docs do not depend on the run's broker or database: they run once, on PostgreSQL + Redis.
pytestmark = [pytest.mark.any_broker, pytest.mark.any_database]

DOCS = Path(__file__).resolve().parents[2] / "docs"
RUNNABLE = re.compile(r"^<!-- run(?:: (?P<mode>[\w-]+))? -->\n```python\n(?P<code>.*?)^```$", re.M | re.S)
MODES = {None: True, "queued": False}  # mode → eager
SETTING_ROW = re.compile(r"^\| `TASKQUEUE_(\w+)` \| `([^`]*)` \|", re.M)
LINK = re.compile(r"\]\((?!https?://|#)([^)#\s]+)(?:#[^)]*)?\)")
MENTION = re.compile(r"\bTASKQUEUE_([A-Z][A-Z_]*[A-Z])")
# Environment variables of taskqueue's own test suite, named in the README and reliability.md.
NOT_SETTINGS = ("TEST_", "FAULT_", "REQUIRE_")
# The pages whose examples must run (the user's path through tasks, calling, results and tests).
KEY_PAGES = ("getting-started", "tasks", "calling", "canvas", "results", "periodic-tasks", "testing")


def _pages() -> list[str]:
    return sorted(path.stem for path in DOCS.glob("*.md") if RUNNABLE.search(path.read_text()))


def _examples(page: str) -> list[tuple[str | None, int, str]]:
    text = (DOCS / f"{page}.md").read_text()
    return [(match["mode"], text.count("\n", 0, match.start("code")) + 1, match["code"])
            for match in RUNNABLE.finditer(text)]


def test_settings_reference_lists_every_setting_of_conf_with_its_default():
    documented = dict(SETTING_ROW.findall((DOCS / "settings.md").read_text()))
    defaults = {field.name: field.default for field in dataclasses.fields(Settings)}
    assert sorted(defaults.keys() - documented.keys()) == [], "settings of conf.py missing from docs/settings.md"
    assert sorted(documented.keys() - defaults.keys()) == [], "docs/settings.md lists settings conf.py lacks"
    for name, default in documented.items():
        assert eval(default, {"timedelta": timedelta}) == defaults[name], f"TASKQUEUE_{name}: documented {default}"


def test_no_page_names_a_setting_that_does_not_exist():
    names = {field.name for field in dataclasses.fields(Settings)}
    for path in [*DOCS.glob("*.md"), DOCS.parent / "README.md"]:
        unknown = {name for name in MENTION.findall(path.read_text())
                   if name not in names and not name.startswith(NOT_SETTINGS)}
        assert not unknown, f"{path.name} names settings conf.py lacks: {sorted(unknown)}"


def test_every_relative_link_of_the_docs_leads_to_a_file():
    for path in [*DOCS.glob("*.md"), DOCS.parent / "README.md"]:
        broken = [target for target in LINK.findall(path.read_text()) if not (path.parent / target).exists()]
        assert not broken, f"{path.name} links to missing files: {broken}"


def test_the_key_pages_have_runnable_examples():
    assert set(KEY_PAGES) <= set(_pages())
    for page in _pages():
        assert all(mode in MODES for mode, _, _ in _examples(page)), f"{page}.md: unknown <!-- run: ... --> mode"


@pytest.mark.parametrize("page", _pages())
def test_the_runnable_examples_of_the_page_run(page, transactional_db, broker_url, settings):
    module = f"docs_examples.{page.replace('-', '_')}"
    namespace = {"__name__": module}
    try:
        for mode, line, code in _examples(page):
            settings.TASKQUEUE_TASK_ALWAYS_EAGER = MODES[mode]
            # padded so that a traceback names the line of the .md file
            exec(compile("\n" * (line - 1) + code, str(DOCS / f"{page}.md"), "exec"), namespace)
    finally:
        for name in [name for name, task in registry._tasks.items() if task.__module__ == module]:
            del registry._tasks[name]
