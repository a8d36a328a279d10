"""The documentation runs: every ```python block of README.md and docs/*.md.

Conventions for the Markdown files:

* Each file's ```python blocks run in order, in one namespace shared by the
  blocks of that file (a later block sees the names an earlier one defined),
  with the working directory left alone. A block that raises fails the test,
  which names the file, the block number (1-based, counting python blocks only)
  and the line; tracebacks point at the Markdown file's own line numbers.
* A ```python block followed by an ```output block (only blank lines in
  between) must print exactly the output block's text to stdout: same lines,
  same whitespace, ending with one newline. Blocks without an ``output`` block
  may print anything.
* Any other fence (```text, ```sh, ```output on its own, ...) is not run. Mark
  code that must not run as ```text.
* After a file has run, every ``dispatch.Library`` left open in its namespace is
  closed, so a failing page cannot leak registrations into other tests.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import re
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\s]*)[^`]*$")


@dataclass
class Block:
    lang: str
    text: str
    line: int  # 1-based line number of the block's first content line
    end: int  # 1-based line number of the closing fence
    number: int = 0  # 1-based among python blocks
    expected: str | None = None  # the text of a following ```output block


def parse_blocks(markdown: str) -> list[Block]:
    """Every fenced block of ``markdown``, in order."""
    lines = markdown.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        fence, indent = m["fence"], len(m["indent"])
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not closing.match(lines[j]):
            line = lines[j]
            body.append(line[min(indent, len(line) - len(line.lstrip(" "))) :])
            j += 1
        text = "\n".join(body) + "\n" if body else ""
        blocks.append(Block(m["info"].lower(), text, i + 2, j + 1))
        i = j + 1
    return blocks


def python_blocks(markdown: str) -> list[Block]:
    """The ```python blocks, numbered, each with the ```output block that follows it."""
    blocks = parse_blocks(markdown)
    lines = markdown.splitlines()
    out: list[Block] = []
    for k, b in enumerate(blocks):
        if b.lang != "python":
            continue
        b.number = len(out) + 1
        nxt = blocks[k + 1] if k + 1 < len(blocks) else None
        between = lines[b.end : nxt.line - 2] if nxt is not None else []
        if nxt is not None and nxt.lang == "output" and not any(s.strip() for s in between):
            b.expected = nxt.text
        out.append(b)
    return out


def run_markdown(path: Path) -> int:
    """Run ``path``'s python blocks as the module docstring says; return how many ran."""
    try:
        name = str(path.relative_to(ROOT))
    except ValueError:
        name = str(path)
    blocks = python_blocks(path.read_text(encoding="utf-8"))
    ns: dict[str, object] = {"__name__": "__docs__"}
    try:
        for b in blocks:
            where = f"{name} python block {b.number} (line {b.line})"
            # Pad with newlines so tracebacks show the Markdown file's own line numbers.
            code = compile("\n" * (b.line - 1) + b.text, str(path), "exec")
            buf = io.StringIO()
            try:
                with contextlib.redirect_stdout(buf):
                    exec(code, ns)
            except Exception:
                pytest.fail(f"{where} raised:\n{traceback.format_exc()}", pytrace=False)
            if b.expected is not None and buf.getvalue() != b.expected:
                diff = "\n".join(
                    difflib.unified_diff(
                        b.expected.splitlines(),
                        buf.getvalue().splitlines(),
                        "expected (output block)",
                        "printed",
                        lineterm="",
                    )
                )
                pytest.fail(
                    f"{where} printed something other than its output block:\n{diff}\n"
                    f"printed: {buf.getvalue()!r}",
                    pytrace=False,
                )
    finally:
        _close_libraries(ns)
    return len(blocks)


def _close_libraries(ns: dict[str, object]) -> None:
    import dispatch

    for value in ns.values():
        if isinstance(value, dispatch.Library):
            value.close()


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_markdown_python_blocks_run(path: Path) -> None:
    assert path.is_file(), f"{path} is missing"
    run_markdown(path)


def test_readme_opens_with_the_setup_commands() -> None:
    """README: title, one-sentence description, then the two set-up commands, kept in
    line with .ci/run (which installs -e ".[test]" and runs python -m pytest -q)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first = parse_blocks(text)[0]
    assert first.line <= 6, "the set-up commands must come right after the description"
    assert first.text.splitlines() == [
        "python3 -m venv .venv && . .venv/bin/activate && pip install . && dispatchsim tour",
        "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test]' "
        "&& python -m pytest -q",
    ]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert 'pip install -q -e ".[test]"' in ci
    assert "python -m pytest -q" in ci
    assert "dispatchsim tour" in ci


# -- the harness itself ------------------------------------------------------------------
_SAMPLE = """\
# sample

```python
x = 1
print("hello")
```

```output
hello
```

```text
this is not run
```

```python
print(x + 1)
```

```output
3
```
"""


def test_parser_pairs_python_and_output_blocks() -> None:
    blocks = python_blocks(_SAMPLE)
    assert [(b.number, b.line, b.expected) for b in blocks] == [(1, 4, "hello\n"), (2, 17, "3\n")]


def test_harness_reports_the_block_whose_output_differs(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(_SAMPLE)
    with pytest.raises(pytest.fail.Exception, match=r"python block 2 \(line 17\) printed"):
        run_markdown(page)
    page.write_text(_SAMPLE.replace("3\n```", "2\n```"))
    assert run_markdown(page) == 2  # shared namespace: block 2 sees x


def test_harness_reports_the_block_that_raises(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# t\n\n```python\nok = 1\n```\n\n```python\n\n1 / 0\n```\n")
    with pytest.raises(pytest.fail.Exception, match=r"(?s)block 2 \(line 8\) raised.*line 9"):
        run_markdown(page)
