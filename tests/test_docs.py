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

Beyond running the blocks:

* every relative link of these files points at an existing file, and every
  ``#anchor`` at a heading of that file (GitHub's anchor rules);
* docs/index.md links every page of docs/, and README.md links docs/index.md;
* docs/api.md documents every public name (see ``test_api_reference_*``).
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
import io
import re
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


# -- links ------------------------------------------------------------------------------
_LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")
_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(?P<text>.+?)\s*#*\s*$")


def _prose_lines(markdown: str) -> list[tuple[int, str]]:
    """(1-based line number, line) for every line outside fenced blocks."""
    inside: set[int] = set()
    for b in parse_blocks(markdown):
        inside.update(range(b.line - 1, b.end + 1))  # the fences and the body
    return [(n, line) for n, line in enumerate(markdown.splitlines(), 1) if n not in inside]


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors: lowercased heading text, punctuation dropped, spaces -> '-'."""
    anchors: set[str] = set()
    for _, line in _prose_lines(markdown):
        m = _HEADING.match(line)
        if m:
            anchors.add(re.sub(r"[^\w\- ]", "", m["text"].lower()).replace(" ", "-"))
    return anchors


def relative_links(path: Path) -> list[tuple[int, str]]:
    out = []
    for n, line in _prose_lines(path.read_text(encoding="utf-8")):
        for m in _LINK.finditer(line):
            target = m["target"]
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):  # not http:, mailto:, ...
                out.append((n, target))
    return out


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    broken = []
    for n, target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"line {n}: {target} (no such file)")
        elif (
            anchor
            and dest.suffix == ".md"
            and anchor not in heading_anchors(dest.read_text(encoding="utf-8"))
        ):
            broken.append(f"line {n}: {target} (no heading with that anchor)")
    assert not broken, f"{path.relative_to(ROOT)}: broken links:\n" + "\n".join(broken)


def test_index_links_every_page() -> None:
    docs = ROOT / "docs"
    linked = {(docs / t.partition("#")[0]).resolve() for _, t in relative_links(docs / "index.md")}
    pages = {p.resolve() for p in docs.glob("*.md")} - {(docs / "index.md").resolve()}
    missing = sorted(p.name for p in pages - linked)
    assert not missing, f"docs/index.md does not link: {missing}"
    readme_links = {t.partition("#")[0] for _, t in relative_links(ROOT / "README.md")}
    assert "docs/index.md" in readme_links


# -- the API reference ----------------------------------------------------------------------
API_DOC = ROOT / "docs" / "api.md"
PUBLIC_MODULES = ("dispatch", "modes", "kernels", "kernels.autograd")
# Tensor attributes with a leading underscore that are public in torch too.
TENSOR_UNDERSCORE_API = ("_version", "_is_view", "_base")

_ITEM = re.compile(r"^(?P<indent> *)- (?P<text>.*)$")
_ENTRY = re.compile(r"^`(?P<name>(?:dispatch|modes|kernels)(?:\.\w+)+)(?P<sig>\([^`]*\))?`")
_MEMBER = re.compile(r"`\.(?P<name>\w+)(?P<sig>\([^`]*\))?`")


@dataclass
class ApiEntry:
    name: str  # qualified, e.g. "dispatch.ones"
    sig: str | None
    line: int
    members: list[tuple[str, str | None, int]]  # (name, signature or None, line)


def api_entries(markdown: str) -> list[ApiEntry]:
    """The reference's entries: top-level bullets that start with a backticked qualified
    name, each with the ``.member`` names its nested bullets mention."""
    items: list[tuple[int, int, str]] = []  # (level, line, text)
    for n, line in _prose_lines(markdown):
        m = _ITEM.match(line)
        if m:
            items.append((len(m["indent"]) // 2, n, m["text"]))
        elif items and line.startswith(" ") and line.strip() and items[-1][1] >= 0:
            level, start, text = items[-1]
            if len(line) - len(line.lstrip(" ")) > 2 * level:  # a continuation line
                items[-1] = (level, start, text + " " + line.strip())
                continue
            items.append((-1, -1, ""))  # an indented paragraph ends the item
        else:
            items.append((-1, -1, ""))  # a blank line or anything else ends the item
    entries: list[ApiEntry] = []
    for level, n, text in items:
        if level == 0:
            m = _ENTRY.match(text)
            if m:
                entries.append(ApiEntry(m["name"], m["sig"], n, []))
        elif level == 1 and entries:
            for m in _MEMBER.finditer(text):
                entries[-1].members.append((m["name"], m["sig"], n))
    return entries


def resolve(qualname: str) -> Any:
    """``dispatch.trace`` is the function the package exports, not the submodule: walk
    attributes, importing a submodule only where the package has no such attribute."""
    parts = qualname.split(".")
    obj: Any = importlib.import_module(parts[0])
    for i, p in enumerate(parts[1:], 2):
        if not hasattr(obj, p) and inspect.ismodule(obj):
            try:
                importlib.import_module(".".join(parts[:i]))
            except ModuleNotFoundError:
                pass
        obj = getattr(obj, p)
    return obj


def _plain(sig: inspect.Signature, drop_first: bool = False) -> str:
    params = [p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()]
    return str(
        sig.replace(
            parameters=params[1:] if drop_first else params,
            return_annotation=inspect.Signature.empty,
        )
    )


def member_signature(owner: Any, name: str) -> str | None:
    """The signature a user calls ``owner.name`` with, or None for a non-method."""
    raw = inspect.getattr_static(owner, name)
    if isinstance(raw, staticmethod):
        return _plain(inspect.signature(raw.__func__))
    if isinstance(raw, classmethod):
        return _plain(inspect.signature(getattr(owner, name)))
    if inspect.isfunction(raw):
        return _plain(inspect.signature(raw), drop_first=True)
    return None


def test_api_reference_parser() -> None:
    sample = (
        "- `dispatch.ones(*size)` — text\n  more text `.ignored`\n"
        "  - `.a(x)`, `.b` — members\n    `.c()` continued\n\n"
        "  A paragraph with `.not_a_member`.\n- `modes.no_grad` — next\n"
    )
    entries = api_entries(sample)
    assert [(e.name, e.sig) for e in entries] == [
        ("dispatch.ones", "(*size)"),
        ("modes.no_grad", None),
    ]
    assert [(m, s) for m, s, _ in entries[0].members] == [("a", "(x)"), ("b", None), ("c", "()")]


def test_api_reference_documents_every_public_name() -> None:
    entries = {e.name: e for e in api_entries(API_DOC.read_text(encoding="utf-8"))}
    missing = [
        f"{mod}.{name}"
        for mod in PUBLIC_MODULES
        for name in importlib.import_module(mod).__all__
        if f"{mod}.{name}" not in entries
    ]
    assert not missing, f"docs/api.md has no entry for: {missing}"
    import dispatch

    public = {n for n in dir(dispatch.Tensor) if not n.startswith("_")}
    public |= set(TENSOR_UNDERSCORE_API)
    documented = {m for m, _, _ in entries["dispatch.Tensor"].members}
    assert not public - documented, (
        f"docs/api.md documents no dispatch.Tensor member {sorted(public - documented)}"
    )


def test_api_reference_names_and_signatures_are_real() -> None:
    problems = []
    for e in api_entries(API_DOC.read_text(encoding="utf-8")):
        try:
            obj = resolve(e.name)
        except AttributeError:
            problems.append(f"line {e.line}: {e.name} does not exist")
            continue
        if e.sig is not None:
            real = _plain(inspect.signature(obj))
            if e.sig != real:
                problems.append(f"line {e.line}: {e.name}{e.sig}, but the signature is {real}")
        for name, sig, line in e.members:
            if not hasattr(obj, name):
                problems.append(f"line {line}: {e.name}.{name} does not exist")
                continue
            if sig is None:
                continue
            real = member_signature(obj, name)
            if real is None:
                problems.append(f"line {line}: {e.name}.{name} is not a method: drop the ()")
            elif sig != real:
                problems.append(f"line {line}: {e.name}.{name}{sig}, but the signature is {real}")
    assert not problems, "docs/api.md:\n" + "\n".join(problems)


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
