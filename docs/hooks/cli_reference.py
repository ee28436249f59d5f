"""MkDocs hook: the command-line reference, rendered from the real parser at build time.

A page that holds the marker gets, in its place, every `maskloop` subcommand (its help, description, usage and
arguments) as read from `seg_core.cli.build_parser()`. The page cannot drift from the command: an option added,
renamed or removed shows up on the next build. Only `build_parser()` returning an `argparse.ArgumentParser` with
subcommands is relied on; how the parser is put together is its own business.
"""

from __future__ import annotations

import argparse
import html

MARKER = "<!-- cli-reference -->"
USAGE_WIDTH = 100  # fixed, so the page does not depend on the terminal that runs the build


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 (MkDocs' hook signature)
    if MARKER not in markdown:
        return markdown
    from seg_core.cli import build_parser  # imported here: only a page with the marker needs it

    return markdown.replace(MARKER, render(build_parser()))


def render(parser: argparse.ArgumentParser) -> str:
    """Markdown for every subcommand of `parser`: a summary table, then a section per command."""
    commands = list(subcommands(parser))
    lines = ["```text", usage(parser), "```", ""]
    rows = [argument_row(parser, action) for action in parser._actions if shown(action)]
    if rows:
        lines += ["| argument | meaning |", "| --- | --- |", *rows, ""]
    lines += ["| command | what it does |", "| --- | --- |"]
    for name, helptext, sub in commands:
        lines.append(f"| [`{sub.prog}`](#{anchor(name)}) | {cell(helptext or sub.description or '')} |")
    lines.append("")
    for name, helptext, sub in commands:
        lines.extend(command_section(name, helptext, sub, level=3))
    return "\n".join(lines)


def subcommands(parser: argparse.ArgumentParser):
    """(name, one-line help, subparser) for each subcommand, in the order the parser lists them."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        seen: set[int] = set()
        for name, sub in action.choices.items():
            if id(sub) in seen:  # an alias names a parser already listed
                continue
            seen.add(id(sub))
            yield name, helps.get(name), sub


def anchor(name: str) -> str:
    return "cmd-" + name.replace(" ", "-")


def command_section(name: str, helptext: str | None, sub: argparse.ArgumentParser, level: int) -> list[str]:
    lines = [f"{'#' * level} `{sub.prog}` {{#{anchor(name)}}}", ""]
    for text in dict.fromkeys((helptext, sub.description)):  # a description that repeats the help is said once
        if text and text != argparse.SUPPRESS:
            lines += [text_block(text), ""]
    lines += ["```text", usage(sub), "```", ""]
    rows = [argument_row(sub, action) for action in sub._actions if shown(action)]
    if rows:
        lines += ["| argument | meaning |", "| --- | --- |", *rows, ""]
    if sub.epilog:
        lines += [text_block(sub.epilog), ""]
    for child, child_help, child_parser in subcommands(sub):
        lines += command_section(f"{name} {child}", child_help, child_parser, level + 1)
    return lines


def usage(parser: argparse.ArgumentParser) -> str:
    formatter = parser.formatter_class(prog=parser.prog, width=USAGE_WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, prefix="")
    return formatter.format_help().strip()


def shown(action: argparse.Action) -> bool:
    return not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) and \
        action.help != argparse.SUPPRESS


def argument_row(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    formatter = parser.formatter_class(prog=parser.prog, width=USAGE_WIDTH)
    if action.option_strings:
        args = formatter._format_args(action, action.dest.upper()) if action.nargs != 0 else ""
        name = ", ".join(f"{opt} {args}".strip() for opt in action.option_strings)
    else:
        name = formatter._format_args(action, action.dest)
    meaning = formatter._expand_help(action) if action.help else ""
    extra = []
    if action.required and action.option_strings:
        extra.append("required")
    if action.choices is not None and action.metavar is not None:  # without a metavar the name lists them
        extra.append("one of: " + ", ".join(str(c) for c in action.choices))
    if has_default(action) and "default" not in meaning.lower():
        extra.append(f"default: {action.default}")
    if extra:
        meaning = f"{meaning} ({'; '.join(extra)})" if meaning else "; ".join(extra).capitalize()
    return f"| `{name}` | {cell(meaning)} |"


def has_default(action: argparse.Action) -> bool:
    if action.default in (None, argparse.SUPPRESS) or action.nargs == 0:
        return False  # flags say what they do when given; their default is not giving them
    return not (isinstance(action.default, (list, tuple)) and not action.default)


def text_block(text: str) -> str:
    """A help or description as Markdown prose: its own words, nothing read as HTML or Markdown markup."""
    return escape(" ".join(text.split()))


def cell(text: str) -> str:
    return text_block(text).replace("|", "\\|")


def escape(text: str) -> str:
    text = html.escape(text, quote=False)
    for char in "\\`*_[]":
        text = text.replace(char, "\\" + char)
    return text
