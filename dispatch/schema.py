"""Operator schemas: a Python mirror of ``c10::FunctionSchema`` and ``torch::jit::parseSchema``.

PyTorch describes every operator with a *function schema* string, the grammar of
``native_functions.yaml`` and of ``torch.library.Library.define``::

    aten::add.Tensor(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor

This module parses such strings into frozen :class:`FunctionSchema` /
:class:`Argument` / :class:`AliasInfo` values and prints them back in the exact
canonical form of ``str(torch.ops.aten.add.Tensor._schema)`` (the printer in
``aten/src/ATen/core/function_schema.{h,cpp}`` and ``ivalue.cpp``).  The parser
follows ``torch/csrc/jit/frontend/function_schema_parser.cpp`` and
``schema_type_parser.cpp``: the same tokens (including torch's reserved words,
which cannot be used as names), the same acceptance of defaults (``int[2]
stride=1`` is the list ``(1, 1)``, ``float eps=1e-05`` is a float, ``float?
correction=1`` stays the int ``1``), the same rule that a positional argument
without a default may not follow one with a default (non-optional lists
excepted), and error messages in torch's ``expected X but found 'Y' here:``
shape with a caret line under the offending token.

Deliberate differences from torch, all listed here:

* Composite types that the flat :class:`Argument` model cannot describe --
  tuples ``(int, t)``, ``Dict(...)``, ``Future(...)``, ``RRef(...)``,
  ``Await(...)``, ``Union(...)`` and nested lists ``Tensor[][]`` -- raise
  :class:`SchemaParseError` (``T??`` folds into ``T?`` as in torch).  Type variables (``t``, any
  other lower-case unknown name) are rejected unless ``allow_typevars=True``
  (torch's default is ``True``).  ``Dimname`` is accepted (torch builds without
  named-tensor support reject it).  The ``Tensor!`` shorthand (an anonymous
  alias set, printed by torch as the unparseable ``Tensor($0! -> )``) and two
  alias annotations on one argument (``Tensor(a)[](b)``) are rejected.
* Defaults are checked against the type: torch accepts ``int x=1.5``,
  ``Tensor? t=1`` or ``bool? b=1`` and this parser does not.  Identifier
  defaults (``contiguous_format``, ``long``, ``float``, ``complex``,
  ``strided``, ``Mean``) are kept as ``str`` and printed as written, whereas
  torch converts them to the ints in :data:`TORCH_ENUM_DEFAULTS` and prints the
  int.  ``inf``, ``-inf`` and ``nan`` are accepted as float defaults (torch's
  lexer cannot read them back, although its printer produces them).  A number
  with an upper-case exponent (``1E5``) is a float (torch reads ``float?
  x=1E5`` as the int ``1``).
* Duplicate argument names, duplicate return names and a second bare ``*`` are
  errors (torch accepts all three silently).
* Whitespace, including newlines, may separate any two tokens (torch's lexer
  treats a newline outside parentheses as a token); ``#`` comments are skipped
  as in torch.  ``__torch__.torch.classes.<ns>.<Class>`` types are accepted
  without checking that the class is registered.
* Where torch's printer emits text its own parser cannot read back, the
  printer here emits a parseable equivalent: an element alias on an optional
  element prints ``Tensor(a)?[]`` (torch: ``Tensor?(a)[]``), a ``Device``
  default prints quoted, a purely imaginary default prints ``2.j`` (torch:
  ``0.+2.j``), and an ``int[]`` default of repeated values is collapsed to one
  value only when the list has a declared size equal to its length.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Mapping
from typing import Final, NamedTuple

import attrs

__all__ = [
    "BASE_TYPES",
    "NO_DEFAULT",
    "TORCH_ENUM_DEFAULTS",
    "AliasInfo",
    "Argument",
    "FunctionSchema",
    "SchemaParseError",
    "parse_name",
    "parse_schema",
]


# --------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------

#: The base (element) types understood by the parser.  The first seventeen are the
#: native_functions.yaml vocabulary; the rest are further atoms of torch's
#: ``SchemaTypeParser`` that occur in registered TorchScript operators.
BASE_TYPES: Final[frozenset[str]] = frozenset(
    {
        "Tensor",
        "int",
        "SymInt",
        "float",
        "bool",
        "str",
        "Scalar",
        "ScalarType",
        "Device",
        "Layout",
        "MemoryFormat",
        "Generator",
        "Dimname",
        "Storage",
        "Stream",
        "Any",
        "complex",
        # further torch atoms
        "SymBool",
        "QScheme",
        "Quantizer",
        "Capsule",
        "AnyClassType",
        "AnyEnumType",
        "NoneType",
    }
)

#: The identifiers torch accepts as (integer) default values, and the ints torch stores
#: for them (``at::kFloat``, ``at::kComplexFloat``, ``at::kLong``, ``at::kStrided``,
#: ``at::Reduction::Mean``, ``c10::MemoryFormat::Contiguous``).  This module keeps the
#: identifier itself as the default.
TORCH_ENUM_DEFAULTS: Final[Mapping[str, int]] = {
    "float": 6,
    "complex": 9,
    "long": 4,
    "strided": 0,
    "Mean": 1,
    "contiguous_format": 0,
}

# Types whose default goes through torch's ``parseSingleConstant`` with an int kind.
_INT_LIKE: Final = frozenset({"int", "SymInt", "ScalarType", "Layout", "MemoryFormat"})
# Types whose only possible default is ``None`` (torch's ``parseTensorDefault``).
_NONE_ONLY: Final = frozenset({"Tensor", "Generator", "Quantizer"})
# Composite types that the flat Argument model cannot represent.
_CONTAINER_TYPES: Final = frozenset({"Dict", "Future", "RRef", "Await", "Union", "Tuple"})
_FLOAT_IDENTS: Final[Mapping[str, float]] = {"inf": math.inf, "nan": math.nan}

# torch's lexer turns these words into keyword tokens, so they can never be names.
_KEYWORDS: Final = frozenset(
    {
        "def",
        "if",
        "else",
        "elif",
        "while",
        "return",
        "is",
        "True",
        "False",
        "None",
        "and",
        "or",
        "not",
        "global",
        "for",
        "in",
        "raise",
        "assert",
        "break",
        "continue",
        "del",
        "pass",
        "class",
        "import",
        "with",
        "as",
        "Ellipsis",
        "NoneType",
    }
)

# Multi-character operator tokens of torch's lexer (longest first) and their kind names
# as torch spells them in error messages.
_MULTI_CHAR_TOKENS: Final[tuple[tuple[str, str], ...]] = (
    ("<=>", "equivalent"),
    ("...", "dots"),
    ("**=", "**="),
    ("<<=", "<<="),
    (">>=", ">>="),
    ("->", "arrow"),
    ("!=", "ne"),
    ("==", "eq"),
    ("<=", "le"),
    (">=", "ge"),
    ("//", "floordiv"),
    ("<<", "<<"),
    (">>", ">>"),
    ("+=", "+="),
    ("-=", "-="),
    ("*=", "*="),
    ("/=", "/="),
    ("%=", "%="),
    ("|=", "|="),
    ("&=", "&="),
    ("^=", "^="),
    ("**", "pow operator"),
)
_SINGLE_CHAR_TOKENS: Final = frozenset("+-*/%@()[]:,={}><.?!&^|~")

_WHITESPACE_RE: Final = re.compile(r"(?:[ \t\n\r\f\v]+|#[^\n]*|\\\n)+")
_NUMBER_RE: Final = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?j?")
_IDENT_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SIMPLE_ESCAPES: Final[Mapping[str, str]] = {
    "\\": "\\",
    "'": "'",
    '"': '"',
    "\n": "\n",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",  # torch prints \r but cannot read it back; accepted here
    "t": "\t",
    "v": "\v",
}
_PRINT_ESCAPES: Final[Mapping[str, str]] = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


class _NoDefault(enum.Enum):
    NO_DEFAULT = "NO_DEFAULT"

    def __repr__(self) -> str:
        return "NO_DEFAULT"


#: Sentinel for "this argument has no default value" (``None`` is a real default).
NO_DEFAULT: Final = _NoDefault.NO_DEFAULT


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


class SchemaParseError(RuntimeError):
    """A malformed schema, reported in torch's style::

        expected ) but found 'arrow' here:
        g(Tensor x -> Tensor
                   ~~ <--- HERE
        (position 11)

    The first three lines are what ``torch._C.parse_schema`` prints for the same input
    (torch omits the caret line when the error is at the end of the text).  ``position``
    is the 0-based character offset of the offending token (``len(text)`` at the end),
    ``expected`` says what the parser wanted and ``found`` what it got (a token kind such
    as ``ident``/``number``/``eof`` for grammar errors, the token text otherwise).
    """

    def __init__(
        self, text: str, position: int, expected: str, found: str, length: int = 1
    ) -> None:
        self.text = text
        self.position = position
        self.expected = expected
        self.found = found
        self.length = length
        super().__init__(
            f"expected {expected} but found '{found}' here:\n"
            f"{_highlight(text, position, length)}(position {position})\n"
        )

    def __reduce__(self) -> tuple[type[SchemaParseError], tuple[str, int, str, str, int]]:
        return (type(self), (self.text, self.position, self.expected, self.found, self.length))


def _highlight(text: str, position: int, length: int) -> str:
    line_start = text.rfind("\n", 0, position) + 1
    line_end = text.find("\n", position)
    if line_end == -1:
        line_end = len(text)
    column = position - line_start
    width = max(1, min(length, line_end - position))
    return f"{text[line_start:line_end]}\n{' ' * column}{'~' * width} <--- HERE\n"


# --------------------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------------------


@attrs.frozen
class AliasInfo:
    """An alias annotation such as ``(a)``, ``(a!)``, ``(a -> *)`` or ``(b|a)``.

    ``before_set`` holds the alias set(s) written before the arrow, ``|``-joined when
    there are several (``"b|a"``); ``after_set`` the set(s) after ``->`` or ``None``
    when there is no arrow (torch drops an arrow whose two sides are equal).
    """

    before_set: str
    is_write: bool = False
    after_set: str | None = None

    @property
    def before_sets(self) -> tuple[str, ...]:
        return tuple(self.before_set.split("|"))

    @property
    def after_sets(self) -> tuple[str, ...]:
        return self.before_sets if self.after_set is None else tuple(self.after_set.split("|"))

    def __str__(self) -> str:
        arrow = "" if self.after_set is None else f" -> {self.after_set}"
        return f"({self.before_set}{'!' if self.is_write else ''}{arrow})"


def _type_text(
    base_type: str, is_optional: bool, is_list: bool, list_size: int | None, elem_optional: bool
) -> str:
    if not is_list:
        return base_type + ("?" if is_optional else "")
    size = "" if list_size is None else str(list_size)
    return f"{base_type}{'?' if elem_optional else ''}[{size}]{'?' if is_optional else ''}"


@attrs.frozen
class Argument:
    """One argument (or return) of a schema, mirroring ``c10::Argument``.

    ``type`` is the canonical type text without alias annotation (``"Tensor?[]"``,
    ``"int[1]?"``) and must agree with the structured fields; :meth:`make` computes it.
    ``alias_on_container`` distinguishes ``Tensor[](a!)`` (annotation on the list,
    ``True``) from ``Tensor(a!)[]`` (annotation on the elements, ``False``); it is only
    meaningful for lists.
    """

    name: str
    type: str
    base_type: str
    is_optional: bool = False
    is_list: bool = False
    list_size: int | None = None
    elem_optional: bool = False
    default: object = NO_DEFAULT
    kwarg_only: bool = False
    alias_info: AliasInfo | None = None
    alias_on_container: bool = False

    def __attrs_post_init__(self) -> None:
        expected = _type_text(
            self.base_type, self.is_optional, self.is_list, self.list_size, self.elem_optional
        )
        if self.type != expected:
            raise ValueError(
                f"Argument.type {self.type!r} disagrees with its fields ({expected!r})"
            )
        if not self.is_list and (self.list_size is not None or self.elem_optional):
            raise ValueError("list_size/elem_optional need is_list=True")
        if self.alias_on_container and (not self.is_list or self.alias_info is None):
            raise ValueError("alias_on_container needs a list type with an alias annotation")

    @classmethod
    def make(
        cls,
        name: str,
        base_type: str,
        *,
        is_optional: bool = False,
        is_list: bool = False,
        list_size: int | None = None,
        elem_optional: bool = False,
        default: object = NO_DEFAULT,
        kwarg_only: bool = False,
        alias_info: AliasInfo | None = None,
        alias_on_container: bool = False,
    ) -> Argument:
        """Builds an Argument, computing ``type`` from the structured fields."""
        return cls(
            name=name,
            type=_type_text(base_type, is_optional, is_list, list_size, elem_optional),
            base_type=base_type,
            is_optional=is_optional,
            is_list=is_list,
            list_size=list_size,
            elem_optional=elem_optional,
            default=default,
            kwarg_only=kwarg_only,
            alias_info=alias_info,
            alias_on_container=alias_on_container,
        )

    @property
    def is_tensor_like(self) -> bool:
        return self.base_type == "Tensor"

    @property
    def is_mutable(self) -> bool:
        return self.alias_info is not None and self.alias_info.is_write

    @property
    def has_default(self) -> bool:
        return self.default is not NO_DEFAULT

    def type_str(self) -> str:
        """The type with its alias annotation, as torch prints it (``Tensor(a!)?``)."""
        alias = "" if self.alias_info is None else str(self.alias_info)
        if not self.is_list:
            return f"{self.base_type}{alias}{'?' if self.is_optional else ''}"
        elem_alias, container_alias = ("", alias) if self.alias_on_container else (alias, "")
        size = "" if self.list_size is None else str(self.list_size)
        return (
            f"{self.base_type}{elem_alias}{'?' if self.elem_optional else ''}[{size}]"
            f"{container_alias}{'?' if self.is_optional else ''}"
        )

    def __str__(self) -> str:
        out = self.type_str()
        if self.name:
            out += " " + self.name
        if self.has_default:
            out += "=" + _format_default(self)
        return out


def _to_arguments(items: Iterable[Argument]) -> tuple[Argument, ...]:
    return tuple(items)


@attrs.frozen
class FunctionSchema:
    """A parsed operator schema, mirroring ``c10::FunctionSchema``."""

    namespace: str | None
    name: str
    overload_name: str
    arguments: tuple[Argument, ...] = attrs.field(converter=_to_arguments)
    returns: tuple[Argument, ...] = attrs.field(converter=_to_arguments)
    is_vararg: bool = False
    is_varret: bool = False

    @property
    def qualified_name(self) -> str:
        return f"{self.namespace}::{self.name}" if self.namespace is not None else self.name

    @property
    def full_name(self) -> str:
        overload = f".{self.overload_name}" if self.overload_name else ""
        return self.qualified_name + overload

    @property
    def is_mutable(self) -> bool:
        return any(a.is_mutable for a in self.arguments)

    @property
    def mutable_arguments(self) -> tuple[int, ...]:
        return tuple(i for i, a in enumerate(self.arguments) if a.is_mutable)

    @property
    def aliased_returns(self) -> tuple[tuple[int, int], ...]:
        """``(return index, argument index)`` for every return sharing an alias set with an
        argument's before-set (the wildcard ``*`` matches nothing)."""
        pairs: list[tuple[int, int]] = []
        for ri, ret in enumerate(self.returns):
            if ret.alias_info is None:
                continue
            sets = set(ret.alias_info.before_sets) - {"*"}
            for ai, arg in enumerate(self.arguments):
                if arg.alias_info is not None and sets.intersection(arg.alias_info.before_sets):
                    pairs.append((ri, ai))
        return tuple(pairs)

    @property
    def is_out_fn(self) -> bool:
        return any(a.kwarg_only and a.is_mutable for a in self.arguments)

    def with_namespace(self, ns: str) -> FunctionSchema:
        return attrs.evolve(self, namespace=ns)

    def __str__(self) -> str:
        parts: list[str] = []
        seen_kwarg_only = False
        for arg in self.arguments:
            if arg.kwarg_only and not seen_kwarg_only:
                parts.append("*")
                seen_kwarg_only = True
            parts.append(str(arg))
        if self.is_vararg:
            parts.append("...")
        rets = [str(r) for r in self.returns]
        if self.is_varret:
            rets.append("...")
        single = len(self.returns) == 1 and not self.is_varret
        bare_varret = not self.returns and self.is_varret
        need_paren = not (single or bare_varret) or (single and rets[0].startswith("("))
        ret_text = ", ".join(rets)
        if need_paren:
            ret_text = f"({ret_text})"
        return f"{self.full_name}({', '.join(parts)}) -> {ret_text}"


# --------------------------------------------------------------------------------------
# Printing defaults (IValue's operator<< as used by the Argument printer)
# --------------------------------------------------------------------------------------


def _format_float(d: float) -> str:
    if math.isnan(d):
        return "nan"
    if math.isinf(d):
        return "inf" if d > 0 else "-inf"
    if d == int(d) and _INT64_MIN <= d < 2**63:
        return f"{int(d)}."
    return f"{d:.17g}"


def _format_complex(c: complex) -> str:
    if c.real == 0 and not math.copysign(1.0, c.real) < 0 and math.isfinite(c.imag):
        return _format_float(c.imag) + "j"
    imag = _format_float(c.imag)
    sign = "" if imag.startswith("-") else "+"
    return f"{_format_float(c.real)}{sign}{imag}j"


def _format_scalar(v: object) -> str:
    if v is None:
        return "None"
    if isinstance(v, bool):
        return "True" if v else "False"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _format_float(v)
    if isinstance(v, complex):
        return _format_complex(v)
    if isinstance(v, tuple):
        return "[" + ", ".join(_format_scalar(x) for x in v) + "]"
    return str(v)


def _quote(s: str) -> str:
    out = ['"']
    for ch in s:
        esc = _PRINT_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _format_default(arg: Argument) -> str:
    v = arg.default
    if isinstance(v, str):
        # Enum identifiers (int-like types) print as written; everything else is a literal.
        return v if arg.base_type in _INT_LIKE else _quote(v)
    if (
        isinstance(v, tuple)
        and arg.base_type == "int"
        and arg.is_list
        and not arg.is_optional
        and arg.list_size == len(v)
        and len(v) > 1
        and all(x == v[0] for x in v)
    ):
        # native_functions.yaml style: ``int[2] stride=1`` rather than ``[1, 1]``.
        return _format_scalar(v[0])
    return _format_scalar(v)


# --------------------------------------------------------------------------------------
# Lexer
# --------------------------------------------------------------------------------------


class _Token(NamedTuple):
    kind: str  # "ident", "number", "string_literal", "eof", a keyword, or the operator text
    text: str
    start: int
    end: int


def _kind_name(kind: str) -> str:
    for text, name in _MULTI_CHAR_TOKENS:
        if kind == text:
            return name
    return kind


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.buffer: list[_Token] = []

    def _lex(self) -> _Token:
        text = self.text
        m = _WHITESPACE_RE.match(text, self.pos)
        pos = m.end() if m else self.pos
        if pos >= len(text):
            self.pos = len(text)
            return _Token("eof", "", len(text), len(text))
        ch = text[pos]
        if ch.isascii() and (ch.isdigit() or ch == "."):
            m = _NUMBER_RE.match(text, pos)
            if m:
                return self._emit("number", m.end(), pos)
        if ch in "\"'":
            end = _string_end(text, pos)
            if end is not None:
                return self._emit("string_literal", end, pos)
            raise SchemaParseError(text, pos, "a valid token", ch)
        m = _IDENT_RE.match(text, pos)
        if m:
            word = m.group()
            return self._emit(word if word in _KEYWORDS else "ident", m.end(), pos)
        for op, _ in _MULTI_CHAR_TOKENS:
            if text.startswith(op, pos):
                return self._emit(op, pos + len(op), pos)
        if ch in _SINGLE_CHAR_TOKENS:
            return self._emit(ch, pos + 1, pos)
        raise SchemaParseError(text, pos, "a valid token", ch)

    def _emit(self, kind: str, end: int, start: int) -> _Token:
        self.pos = end
        return _Token(kind, self.text[start:end], start, end)

    def peek(self, k: int = 0) -> _Token:
        while len(self.buffer) <= k:
            self.buffer.append(self._lex())
        return self.buffer[k]

    def next(self) -> _Token:
        tok = self.peek()
        self.buffer.pop(0)
        return tok


def _string_end(text: str, pos: int) -> int | None:
    """End offset of the string literal starting at ``pos`` (torch's ``isString``)."""
    quote = text[pos]
    q = quote * 3 if text.startswith(quote * 3, pos) else quote
    i = pos + len(q)
    while i < len(text) and not text.startswith(q, i):
        if text[i] == "\n":
            return None
        if text[i] == "\\":
            i += 1
        i += 1
    if i >= len(text):
        return None
    return i + len(q)


# --------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------


class _Const(NamedTuple):
    """A parsed single constant: its value and the lexical form it came from."""

    value: object
    form: str  # "none" | "bool" | "str" | "enum" | "int" | "float" | "complex"
    token: _Token


class _Parser:
    def __init__(self, text: str, allow_typevars: bool) -> None:
        self.text = text
        self.lexer = _Lexer(text)
        self.allow_typevars = allow_typevars

    # -- token helpers -----------------------------------------------------------------

    @property
    def cur(self) -> _Token:
        return self.lexer.peek()

    def next_if(self, kind: str) -> bool:
        if self.cur.kind == kind:
            self.lexer.next()
            return True
        return False

    def expect(self, kind: str) -> _Token:
        tok = self.cur
        if tok.kind != kind:
            raise self.unexpected(_kind_name(kind))
        return self.lexer.next()

    def unexpected(self, expected: str, tok: _Token | None = None) -> SchemaParseError:
        tok = self.cur if tok is None else tok
        return SchemaParseError(
            self.text, tok.start, expected, _kind_name(tok.kind), tok.end - tok.start
        )

    def error(self, expected: str, tok: _Token) -> SchemaParseError:
        """An error naming the token's text rather than its kind."""
        return SchemaParseError(self.text, tok.start, expected, tok.text, tok.end - tok.start)

    # -- names ------------------------------------------------------------------------

    def parse_name(self) -> tuple[str | None, str, str]:
        first = self.expect("ident").text
        namespace: str | None = None
        name = first
        if self.next_if(":"):
            self.expect(":")
            namespace, name = first, self.expect("ident").text
        overload = ""
        if self.next_if("."):
            tok = self.expect("ident")
            overload = tok.text
            if overload == "default" or overload.startswith("__"):
                raise self.error(
                    "a legal overload name (not 'default', not starting with '__')", tok
                )
        return namespace, name, overload

    # -- schema -----------------------------------------------------------------------

    def parse_schema(self) -> FunctionSchema:
        namespace, name, overload = self.parse_name()
        self.expect("(")
        arguments: list[Argument] = []
        name_tokens: list[_Token] = []
        kwarg_only = False
        star: _Token | None = None
        is_vararg = False
        if self.cur.kind != ")":
            while True:
                if is_vararg:
                    raise self.unexpected(") (... must be the last element of the argument list)")
                if self.cur.kind == "*":
                    if star is not None:
                        raise self.error("an argument (a second '*' is not allowed)", self.cur)
                    star = self.lexer.next()
                    kwarg_only = True
                elif self.next_if("..."):
                    is_vararg = True
                else:
                    arg, name_tok = self.parse_argument(is_return=False, kwarg_only=kwarg_only)
                    if any(a.name == arg.name for a in arguments):
                        raise self.error("a unique argument name", name_tok)
                    arguments.append(arg)
                    name_tokens.append(name_tok)
                if not self.next_if(","):
                    break
        self.expect(")")
        self._check_defaults(arguments, name_tokens, is_vararg)

        self.expect("->")
        returns: list[Argument] = []
        is_varret = False
        if self.next_if("..."):
            is_varret = True
        elif self.cur.kind == "(":
            self.lexer.next()
            if self.cur.kind != ")":
                while True:
                    if is_varret:
                        raise self.unexpected(") (... must be the last element of the return list)")
                    if self.next_if("..."):
                        is_varret = True
                    else:
                        ret, name_tok = self.parse_argument(is_return=True, kwarg_only=False)
                        if ret.name and any(r.name == ret.name for r in returns):
                            raise self.error("a unique return name", name_tok)
                        returns.append(ret)
                    if not self.next_if(","):
                        break
            self.expect(")")
        else:
            returns.append(self.parse_argument(is_return=True, kwarg_only=False)[0])
        self.expect("eof")
        return FunctionSchema(
            namespace=namespace,
            name=name,
            overload_name=overload,
            arguments=tuple(arguments),
            returns=tuple(returns),
            is_vararg=is_vararg,
            is_varret=is_varret,
        )

    def _check_defaults(
        self, arguments: list[Argument], name_tokens: list[_Token], is_vararg: bool
    ) -> None:
        if is_vararg:
            for arg, tok in zip(arguments, name_tokens):
                if arg.has_default:
                    raise self.error("no default values in a schema with a '...' vararg", tok)
        # FunctionSchema::checkSchema: a positional argument without a default may not
        # follow one with a default (non-optional lists are exempt for BC).
        seen_default = False
        for arg, tok in zip(arguments, name_tokens):
            if arg.has_default:
                seen_default = True
            elif seen_default and not arg.kwarg_only and not (arg.is_list and not arg.is_optional):
                raise self.error(
                    "a default value (a positional argument without a default may not "
                    "follow one with a default)",
                    tok,
                )

    # -- arguments and types -----------------------------------------------------------

    def parse_argument(self, is_return: bool, kwarg_only: bool) -> tuple[Argument, _Token]:
        base_type, alias, container_alias, ops = self.parse_type()
        list_size: int | None = None
        if self.cur.kind == "[":
            # a sized list ``int[2]``; only possible at the argument level, as in torch
            if "[]" in ops:
                raise self.error("an argument name (nested list types are not supported)", self.cur)
            self.lexer.next()
            size_tok = self.cur
            if size_tok.kind != "number" or not size_tok.text.isdigit():
                raise self.unexpected("number (a list size)")
            list_size = int(size_tok.text) if len(size_tok.text) < 12 else 2**31
            if list_size >= 2**31:
                raise self.error("a list size below 2**31", size_tok)
            self.lexer.next()
            self.expect("]")
            ops.append("[]")
            container_alias = self.parse_container_alias(alias, container_alias)
            if self.next_if("?"):
                ops.append("?")
        is_list = "[]" in ops
        elem_optional = is_list and ops[0] == "?"
        is_optional = ops[-1:] == ["?"] and (not is_list or ops[-2:] == ["[]", "?"])
        name_tok = self.cur
        name = ""
        default: object = NO_DEFAULT
        if is_return:
            if self.cur.kind == "ident":
                name = self.lexer.next().text
        else:
            name = self.expect("ident").text
        arg = Argument.make(
            name,
            base_type,
            is_optional=is_optional,
            is_list=is_list,
            list_size=list_size,
            elem_optional=elem_optional,
            kwarg_only=kwarg_only and not is_return,
            alias_info=alias if alias is not None else container_alias,
            alias_on_container=container_alias is not None,
        )
        if not is_return and self.next_if("="):
            default = self.parse_default(arg)
            arg = attrs.evolve(arg, default=default)
        return arg, name_tok

    def parse_type(self) -> tuple[str, AliasInfo | None, AliasInfo | None, list[str]]:
        """Returns (base type, element alias, container alias, suffixes) where suffixes is
        a list of ``"?"`` / ``"[]"`` in source order."""
        tok = self.cur
        alias: AliasInfo | None = None
        if tok.kind == "(":
            raise self.error("a type (tuple types are not supported)", tok)
        if tok.kind == "ident" and tok.text in _CONTAINER_TYPES:
            raise self.error(f"a type ({tok.text}(...) types are not supported)", tok)
        if tok.kind == "ident" and tok.text == "__torch__":
            base = self.parse_custom_class()
        elif tok.kind in ("None", "NoneType"):
            self.lexer.next()
            base = "NoneType"
            alias = self.parse_alias()
        elif tok.kind == "ident":
            if tok.text in BASE_TYPES:
                base = tok.text
            elif self.allow_typevars and tok.text[0].islower():
                base = tok.text  # a type variable
            else:
                raise self.error(
                    "a type (e.g. Tensor, SymInt, int, float, bool, Scalar; unknown type "
                    "specifier)",
                    tok,
                )
            self.lexer.next()
            alias = self.parse_alias()
        else:
            raise self.unexpected("ident")
        ops: list[str] = []
        container_alias: AliasInfo | None = None
        while True:
            if self.cur.kind == "[" and self.lexer.peek(1).kind == "]":
                if "[]" in ops:
                    raise self.error("a name (nested list types are not supported)", self.cur)
                self.lexer.next()
                self.lexer.next()
                ops.append("[]")
                container_alias = self.parse_container_alias(alias, container_alias)
            elif self.cur.kind == "?":
                self.lexer.next()
                if not ops or ops[-1] != "?":  # torch folds Optional[Optional[T]] into T?
                    ops.append("?")
            else:
                break
        return base, alias, container_alias, ops

    def parse_container_alias(
        self, alias: AliasInfo | None, container_alias: AliasInfo | None
    ) -> AliasInfo | None:
        if self.cur.kind != "(":
            return container_alias
        if alias is not None:
            raise self.error(
                "a name (only one alias annotation per argument is supported)", self.cur
            )
        return self.parse_alias()

    def parse_custom_class(self) -> str:
        parts = [self.expect("ident").text]
        for required in ("torch", "classes", None, None):
            self.expect(".")
            tok = self.expect("ident")
            if required is not None and tok.text != required:
                raise self.error(f"'{required}' (a __torch__.torch.classes.<ns>.<Class> type)", tok)
            parts.append(tok.text)
        return ".".join(parts)

    def parse_alias(self) -> AliasInfo | None:
        if not self.next_if("("):
            return None
        before = self.parse_alias_sets()
        is_write = self.next_if("!")
        after: list[str] | None = None
        if self.next_if("->"):
            after = self.parse_alias_sets()
        self.expect(")")
        if after is not None and set(after) == set(before):
            after = None
        return AliasInfo(
            before_set="|".join(before),
            is_write=is_write,
            after_set=None if after is None else "|".join(after),
        )

    def parse_alias_sets(self) -> list[str]:
        sets: list[str] = []
        while True:
            if self.next_if("*"):
                if "*" not in sets:
                    sets.append("*")
            elif "*" not in sets:  # torch ignores (does not consume) names after a wildcard
                name = self.expect("ident").text
                if name not in sets:
                    sets.append(name)
            if not self.next_if("|"):
                return sets

    # -- defaults ---------------------------------------------------------------------

    def parse_default(self, arg: Argument) -> object:
        start = self.cur
        base = arg.base_type
        if arg.is_optional:
            const = self.parse_single_constant(float_kind=False)
            if const.form == "none":
                return None
            self._check_scalar(arg, const)
            return const.value
        if arg.is_list:
            if arg.elem_optional or not (base in _INT_LIKE or base in ("float", "bool", "complex")):
                raise self.error(f"no default value (a {arg.type} argument cannot have one)", start)
            float_kind = base == "float"
            if start.kind in ("ident", "None"):
                raise self.error(f"a list default for {arg.type} such as [] or [0, 1]", start)
            if arg.list_size is not None and start.kind != "[":
                const = self.parse_single_constant(float_kind)
                self._check_scalar(arg, const)
                return (const.value,) * arg.list_size
            self.expect("[")
            values: list[object] = []
            if self.cur.kind != "]":
                while True:
                    const = self.parse_single_constant(float_kind)
                    self._check_scalar(arg, const)
                    values.append(const.value)
                    if not self.next_if(","):
                        break
            self.expect("]")
            return tuple(values)
        if base in _NONE_ONLY:
            self.expect("None")
            return None
        if base == "Device":
            tok = self.expect("string_literal")
            return self.string_value(tok)
        if base in _INT_LIKE or base in ("float", "bool", "SymBool", "complex", "Scalar", "str"):
            const = self.parse_single_constant(float_kind=base == "float")
            self._check_scalar(arg, const)
            return const.value
        if base == "Dimname":
            const = self.parse_single_constant(float_kind=False)
            self._check_scalar(arg, const)
            return const.value
        raise self.error(f"no default value (a {arg.type} argument cannot have one)", start)

    def _check_scalar(self, arg: Argument, const: _Const) -> None:
        """Type-checks a single constant against the (element) base type."""
        base = arg.base_type
        form = const.form
        allowed: tuple[str, ...]
        if base in _INT_LIKE:
            allowed = ("int", "enum")
            what = "an integer"
        elif base == "float":
            allowed = ("int", "float")
            what = "a number"
        elif base == "complex":
            allowed = ("int", "float", "complex")
            what = "a number"
        elif base == "Scalar":
            allowed = ("int", "float", "complex", "bool")
            what = "a number or bool"
        elif base in ("bool", "SymBool"):
            allowed = ("bool",)
            what = "True or False"
        elif base in ("str", "Dimname", "Device"):
            allowed = ("str",)
            what = "a string literal"
        else:
            allowed = ()
            what = "None"
        if form not in allowed:
            raise self.error(f"{what} as default value for {arg.type}", const.token)

    def parse_single_constant(self, float_kind: bool) -> _Const:
        tok = self.cur
        kind = tok.kind
        if kind in ("True", "False"):
            self.lexer.next()
            return _Const(kind == "True", "bool", tok)
        if kind == "None":
            self.lexer.next()
            return _Const(None, "none", tok)
        if kind == "string_literal":
            self.lexer.next()
            return _Const(self.string_value(tok), "str", tok)
        if kind == "ident":
            self.lexer.next()
            if tok.text in TORCH_ENUM_DEFAULTS:
                return _Const(tok.text, "enum", tok)
            if tok.text in _FLOAT_IDENTS:
                return _Const(_FLOAT_IDENTS[tok.text], "float", tok)
            raise self.error("a numeric default value", tok)
        negative = self.next_if("-")
        num = self.cur
        if negative and num.kind == "ident" and num.text == "inf":
            self.lexer.next()
            return _Const(-math.inf, "float", tok)
        num = self.expect("number")
        text = num.text
        if text.endswith("j"):
            imag = float(text[:-1])
            if math.isinf(imag):
                raise self.error("a finite complex literal", num)
            return _Const(complex(0.0, -imag if negative else imag), "complex", tok)
        if float_kind or any(c in text for c in ".eE"):
            value = float(text)
            if math.isinf(value):
                raise self.error("a finite float literal", num)
            return _Const(-value if negative else value, "float", tok)
        ivalue = int(text) if len(text) < 25 else _INT64_MAX + 2
        ivalue = -ivalue if negative else ivalue
        if not _INT64_MIN <= ivalue <= _INT64_MAX:
            raise self.error("an integer in the int64 range", num)
        return _Const(ivalue, "int", tok)

    def string_value(self, tok: _Token) -> str:
        """Decodes a string literal's escapes (torch's ``parseStringLiteral``)."""
        raw = tok.text
        q = 3 if raw[:3] in ('"""', "'''") and len(raw) >= 6 else 1
        body = raw[q:-q]
        out: list[str] = []
        i = 0
        while i < len(body):
            ch = body[i]
            if ch != "\\":
                out.append(ch)
                i += 1
                continue
            nxt = body[i + 1] if i + 1 < len(body) else ""
            simple = _SIMPLE_ESCAPES.get(nxt)
            if simple is not None:
                out.append(simple)
                i += 2
                continue
            octal = body[i + 1 : i + 4]
            if len(octal) == 3 and all(c in "01234567" for c in octal) and int(octal, 8) < 256:
                out.append(chr(int(octal, 8)))
                i += 4
                continue
            raise self.error("a supported escape sequence (\\\\, \\n, \\t, \\ooo, ...)", tok)
        return "".join(out)


# --------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------


def parse_schema(text: str, *, allow_typevars: bool = False) -> FunctionSchema:
    """Parses a schema string (``torch::jit::parseSchema``).

    Raises :class:`SchemaParseError` for any malformed input.  ``allow_typevars``
    admits lower-case unknown type names as type variables, as torch does by default.
    """
    if not isinstance(text, str):
        raise TypeError(f"schema must be a str, not {type(text).__name__}")
    return _Parser(text, allow_typevars).parse_schema()


def parse_name(text: str) -> tuple[str | None, str, str]:
    """Parses an operator name: ``"aten::add.Tensor"`` -> ``("aten", "add", "Tensor")``,
    ``"relu"`` -> ``(None, "relu", "")``."""
    if not isinstance(text, str):
        raise TypeError(f"operator name must be a str, not {type(text).__name__}")
    parser = _Parser(text, allow_typevars=False)
    result = parser.parse_name()
    parser.expect("eof")
    return result
