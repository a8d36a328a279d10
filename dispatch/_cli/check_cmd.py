"""``dispatchsim check MODULE``: opcheck every operator a user's module registers."""

from __future__ import annotations

import argparse
import textwrap

from dispatch._cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Style, emit_json


def cmd_check(args: argparse.Namespace) -> int:
    """``check MODULE``: import MODULE and opcheck every operator it registered; a progress
    bar on a terminal, then a summary table (exit 1 if an operator failed)."""
    try:
        from dispatch.testing import _check
    except ImportError as exc:
        args.parser.error(str(exc))
        return EXIT_USAGE  # not reached: error() exits
    try:
        module, new = _check.import_module(args.module)
    except _check.ModuleImportError as exc:
        args.parser.error(str(exc))
        return EXIT_USAGE
    ops = _check.find_operators(module, new)
    if not ops:
        args.parser.error(f"{args.module} registered no operators (define them with a Library)")
        return EXIT_USAGE
    results = _check.check_module(ops, examples=args.examples, seed=args.seed)
    failed = [r for r in results if r.status != "ok"]
    if args.format == "json":
        emit_json({"module": args.module, "operators": [r.as_dict() for r in results]})
        return EXIT_FAILED if failed else EXIT_OK
    style = Style(args.colour)
    print(_check.format_table(results))
    for r in results:
        for w in r.warnings:
            print(f"\n{style.bold('warning')}: {w}")
        if r.status != "ok":
            print(f"\n{style.bad(r.status.upper())} {r.op}:\n{textwrap.indent(r.message, '  ')}")
    verdict = f"{len(results) - len(failed)} of {len(results)} operators passed"
    print(f"\n{style.bad(verdict) if failed else style.bold(verdict)}")
    return EXIT_FAILED if failed else EXIT_OK
