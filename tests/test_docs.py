"""Every Python snippet in README.md and docs/ runs as written, in order within its page (one namespace a page).

A snippet that cannot run here says so on its first line (`# needs ...`: a CUDA GPU, a trained run folder, a
long training) and is skipped, unless it needs only a GPU and this machine has one.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SNIPPET = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def snippets(page: Path) -> list[str]:
    return SNIPPET.findall(page.read_text())


def runnable(code: str) -> bool:
    first = code.splitlines()[0] if code.strip() else ""
    if not first.startswith("# needs"):
        return True
    return first == "# needs a CUDA GPU and the hub" and torch.cuda.is_available()


def test_the_pages_have_snippets_and_skip_only_what_says_why():
    found = {p.relative_to(ROOT).as_posix(): snippets(p) for p in PAGES}
    assert len(found["README.md"]) >= 2 and found["docs/quickstart.md"] and found["docs/engine.md"]
    for page, codes in found.items():
        for code in codes:
            assert code.strip(), f"an empty snippet in {page}"


@pytest.mark.parametrize("page", [p for p in PAGES if any(runnable(c) for c in snippets(p))],
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_snippets_run_as_written(page, monkeypatch):
    monkeypatch.chdir(ROOT)
    namespace: dict = {"__name__": "__snippet__"}
    for code in snippets(page):
        if runnable(code):
            exec(compile(code, f"{page.name} snippet", "exec"), namespace)
