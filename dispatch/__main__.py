"""The ``dispatchsim`` command line (also ``python -m dispatch``).

Subcommands (their implementations live in :mod:`dispatch._cli`):

* ``tour [STEP ...] [--list]`` — PyTorch's Gradient Modes document, statement by
  statement: for each step the code, the key-by-key dispatch trace, the observed outcome,
  and checks of the statement (a contradicted statement exits 1);
* ``trace SCRIPT.py [ARGS ...]`` — run a script and print the trace of every operator call;
* ``explain "EXPR" [--mode normal|no_grad|inference]`` — evaluate an expression over small
  tensors and explain the key-set arithmetic of its last operator call;
* ``table OP`` — ``dispatch.dump_table(OP)``: per runtime key, the kernel and where it
  came from;
* ``keys [--under GUARD]`` — the runtime keys in priority order, the alias keys and what
  they expand to, and the thread-local included/excluded sets;
* ``check MODULE`` — import a module and run ``dispatch.testing.opcheck`` on every
  operator it registered; a summary table (exit 1 if one fails).

Every subcommand takes ``--format text|json``; ``tour`` and ``trace`` also ``--format
mermaid`` (a sequence diagram of the keys each call went through). Colour is used only when
stdout is a terminal and ``NO_COLOR`` is not set. Bad arguments print a message and exit
with status 2; a failed tour step, script or expression exits with status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Final

from dispatch._cli.check_cmd import cmd_check
from dispatch._cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    MODE_NAMES,
    PROG,
    Style,
    UsageError,
    emit_json,
    preserved_tls,
    use_colour,
)
from dispatch._cli.explain_cmd import cmd_explain
from dispatch._cli.keys_cmd import GUARD_NAMES, cmd_keys, cmd_table
from dispatch._cli.tour import Step, cmd_tour
from dispatch._cli.tour_steps import STEPS
from dispatch._cli.trace_cmd import cmd_trace

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "PROG", "STEPS", "Step", "build_parser", "main"]

# the names the previous single-module version had (tests and other branches use them)
_use_colour = use_colour
_emit_json = emit_json
_Style = Style
_preserved_tls = preserved_tls

FORMATS: Final = ("text", "json", "mermaid")
MERMAID_COMMANDS: Final = frozenset({"tour", "trace"})


# ----------------------------------------------------------------------------------------
# Subcommand entry points: (parsed arguments) -> exit status
# ----------------------------------------------------------------------------------------
def run_tour(args: argparse.Namespace) -> int:
    return cmd_tour(STEPS, args.steps, args.format, args.list, args.colour)


def run_trace(args: argparse.Namespace) -> int:
    return cmd_trace(args.script, args.args, args.mode, args.format, args.colour)


def run_explain(args: argparse.Namespace) -> int:
    return cmd_explain(args.expression, args.mode, args.format, args.colour)


def run_table(args: argparse.Namespace) -> int:
    return cmd_table(args.op, args.format)


def run_keys(args: argparse.Namespace) -> int:
    return cmd_keys(args.under, args.format, args.colour)


# ----------------------------------------------------------------------------------------
# argument parsing
# ----------------------------------------------------------------------------------------
def _version() -> str:
    try:
        from importlib.metadata import version

        return version("dispatchsim")
    except Exception:  # not installed: run from a source tree
        return "(not installed)"


def _format_parent(choices: tuple[str, ...]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    mermaid = ", mermaid a sequence diagram of the keys" if "mermaid" in choices else ""
    p.add_argument(
        "--format",
        choices=choices,
        default=argparse.SUPPRESS,
        help=f"output format (default: text); json prints machine-readable dicts{mermaid}",
    )
    return p


def _mode_argument(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--mode",
        choices=MODE_NAMES,
        default="normal",
        help=f"run {what} with no guard (normal, the default), inside modes.no_grad() "
        "(no_grad) or inside modes.inference_mode() (inference)",
    )


def build_parser() -> argparse.ArgumentParser:
    fmt = _format_parent(("text", "json"))
    fmt_mermaid = _format_parent(FORMATS)
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "dispatchsim: PyTorch's dispatcher rebuilt in Python on numpy tensors.\n"
            "See which dispatch keys run for an operator call, and what follows from it."
        ),
        epilog=(
            "examples:\n"
            f"  {PROG} tour                      the Gradient Modes document, step by step\n"
            f"  {PROG} tour --list               the steps; `{PROG} tour 4` runs one\n"
            f'  {PROG} explain "ones(3).add_(1)" --mode inference\n'
            f"  {PROG} trace my_script.py --format mermaid\n"
            f"  {PROG} table aten::add_.Tensor\n"
            f"  {PROG} keys --under inference_mode\n\n"
            "Every subcommand takes --format text|json (tour and trace also mermaid).\n"
            "Colour is used only when stdout is a terminal and NO_COLOR is unset.\n"
            "Exit status: 0 ok; 1 a tour step, script or expression failed; 2 bad arguments."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[fmt_mermaid],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "tour",
        parents=[fmt_mermaid],
        help="the Gradient Modes document, statement by statement: code, trace, outcome",
        description=(
            "Run the built-in tour: five basic calls, then every statement and example of "
            "PyTorch's Gradient Modes document. For each step print the code, the "
            "key-by-key dispatch trace of its traced blocks, the observed values, and the "
            "checks that the document's statement predicts. Exits 1 if an observation "
            "contradicts the statement."
        ),
    )
    p.add_argument("steps", nargs="*", metavar="STEP", help="run only these steps (number or name)")
    p.add_argument("--list", action="store_true", help="list the steps and exit")
    p.set_defaults(func=run_tour, parser=p)

    p = sub.add_parser(
        "trace",
        parents=[fmt_mermaid],
        help="run a Python script and print the dispatch trace of its operator calls",
        description=(
            "Run SCRIPT as `python SCRIPT ARGS...` would, record every operator call it "
            "makes with dispatch.trace(), and print what the script printed, then the trace "
            "(text: the tree; json: the events; mermaid: a sequence diagram). Exits 1 if the "
            "script raises (the trace up to the error is still printed)."
        ),
    )
    p.add_argument("script", metavar="SCRIPT", help="the Python file to run")
    p.add_argument(
        "args",
        nargs="*",
        metavar="ARGS",
        help="the script's arguments (put them after `--` if they start with -)",
    )
    _mode_argument(p, "the script")
    p.set_defaults(func=run_trace, parser=p)

    p = sub.add_parser(
        "explain",
        parents=[fmt],
        help='evaluate an expression such as "ones(3).add_(1)" and explain its dispatch',
        description=(
            "Evaluate EXPR over dispatch's factories and functions (ones, zeros, tensor, "
            "arange, randn, add, mul, matmul, ..., dtypes, and ops.<ns>.<op>), tracing every "
            "operator call, then explain the last call: its key-set arithmetic (tensor "
            "arguments | TLS included - TLS excluded - fallthrough keys), the kernel each key "
            "of the result would run, and the keys that did run. `a = ones(3); a.add_(1)` "
            "style statements are allowed; no builtins. Exits 1 if the expression raises."
        ),
    )
    p.add_argument("expression", metavar="EXPR", help='e.g. "ones(3).view(3).add_(1)"')
    _mode_argument(p, "the expression")
    p.set_defaults(func=run_explain, parser=p)

    p = sub.add_parser(
        "table",
        parents=[fmt],
        help="an operator's computed dispatch table (dispatch.dump_table)",
        description=(
            "Print dispatch.dump_table(OP): per runtime key, the kernel that runs and where "
            "it came from (kernel, math kernel, backend fallback, ...)."
        ),
    )
    p.add_argument("op", metavar="OP", help="full operator name, e.g. aten::add_.Tensor")
    p.set_defaults(func=run_table, parser=p)

    p = sub.add_parser(
        "keys",
        parents=[fmt],
        help="the runtime key order and the thread-local included/excluded sets",
        description=(
            "Print the runtime dispatch keys in priority order, the alias keys and their "
            "expansion, the thread-local included/excluded key sets and grad/inference mode, "
            "and the key set of a CPU tensor allocated under that state."
        ),
    )
    p.add_argument(
        "--under",
        choices=GUARD_NAMES,
        default="none",
        metavar="GUARD",
        help=f"show the state inside this guard; one of: {', '.join(GUARD_NAMES)}",
    )
    p.set_defaults(func=run_keys, parser=p)

    p = sub.add_parser(
        "check",
        parents=[fmt],
        help="opcheck every operator a module registers",
        description=(
            "Import MODULE (a dotted name or a .py file) and run dispatch.testing.opcheck on "
            "every operator it defined, with sample arguments drawn by hypothesis; print a "
            "summary table. Exit status 1 if an operator failed, 2 if MODULE cannot be "
            "imported or defines no operator."
        ),
    )
    p.add_argument("module", metavar="MODULE", help="e.g. myproject.ops or path/to/ops.py")
    p.add_argument("--examples", type=int, default=20, help="samples per operator (default 20)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: derandomized)")
    p.set_defaults(func=cmd_check, parser=p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``dispatchsim`` and ``python -m dispatch``; returns the exit status
    (0 ok, 1 a tour step, script or expression failed, 2 bad arguments)."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    # `trace SCRIPT [ARGS] [options] -- MORE ARGS`: argparse cannot give a positional list
    # more words after options, so everything after `--` is handed to the script here
    cut = argv.index("--") if "--" in argv and "trace" in argv[: argv.index("--")] else None
    try:
        if cut is None:
            args = parser.parse_args(argv)
        else:
            args = parser.parse_args(argv[:cut])
            if args.command == "trace":
                args.args = [*args.args, *argv[cut + 1 :]]
            else:
                args = parser.parse_args(argv)
        if not hasattr(args, "format"):
            args.format = "text"
        if args.format == "mermaid" and args.command not in MERMAID_COMMANDS:
            args.parser.error(
                f"argument --format: mermaid is available for tour and trace, not {args.command}"
            )
        args.colour = args.format == "text" and use_colour(sys.stdout)
        try:
            status: int = args.func(args)
        except UsageError as exc:
            args.parser.error(str(exc))
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_USAGE)
    except BrokenPipeError:  # e.g. `dispatchsim tour | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    return status


if __name__ == "__main__":
    sys.exit(main())
