"""``completion``: shell completion scripts for bash, zsh and fish, generated from the
command line's own parser at run time (walked, never written by hand), so a new command or
option is completed as soon as it exists."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import Any

import attrs

__all__ = ["Command", "commands_of", "register", "script"]

SHELLS = ("bash", "zsh", "fish")
PROGRAM = "imagine-billing"


def register(commands: Any) -> None:
    """Add ``completion`` to the command parsers."""
    parser = commands.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh or fish)",
        description="Print a completion script for SHELL on stdout, generated from this "
        "version's commands and options. bash: add 'eval \"$(imagine-billing completion "
        "bash)\"' to ~/.bashrc; zsh: 'eval \"$(imagine-billing completion zsh)\"' in "
        "~/.zshrc; fish: 'imagine-billing completion fish > "
        "~/.config/fish/completions/imagine-billing.fish'.",
    )
    parser.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash, zsh or fish")
    parser.set_defaults(run=run_completion)


def run_completion(args: argparse.Namespace) -> int:
    # The parser the command line was read with (build_parser sets it): importing cli.app
    # here would make the two modules import each other.
    sys.stdout.write(script(args.root_parser, args.shell))
    return 0


@attrs.frozen
class Option:
    """An option of a command: its spellings, whether it takes a value, its choices."""

    names: tuple[str, ...]
    takes_value: bool
    choices: tuple[str, ...]
    help: str


@attrs.frozen
class Command:
    """A command, a subcommand... of the parser: the words that lead to it, its options,
    and its own subcommands (name and help)."""

    path: tuple[str, ...]
    options: tuple[Option, ...]
    subcommands: tuple[tuple[str, str], ...]


def commands_of(parser: argparse.ArgumentParser,
                path: tuple[str, ...] = ()) -> Iterator[Command]:
    """Every command of ``parser``, the top level first, each before its subcommands."""
    options: list[Option] = []
    children: list[tuple[str, argparse.ArgumentParser]] = []
    helps: dict[str, str] = {}
    for action in parser._actions:  # argparse has no public walk of its parsers
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                helps[choice.dest] = choice.help or ""
            children.extend(action.choices.items())
        elif action.option_strings:
            options.append(Option(
                tuple(action.option_strings), action.nargs != 0,
                tuple(str(c) for c in action.choices or ()),
                "" if action.help in (None, argparse.SUPPRESS)
                # The default's "now 'x.db'" is this shell's environment: not for a script.
                else str(action.help).split(" (default: $", 1)[0]))
    yield Command(path, tuple(options), tuple((name, helps.get(name, ""))
                                             for name, _ in children))
    for name, child in children:
        yield from commands_of(child, (*path, name))


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script of ``parser`` for ``shell`` (bash, zsh or fish)."""
    commands = list(commands_of(parser))
    if shell == "fish":
        return _fish(commands)
    bash = _bash(commands)
    if shell == "zsh":
        # zsh runs the bash function through its bash-completion layer (bashcompinit).
        return ("#compdef imagine-billing\n"
                "autoload -U +X bashcompinit && bashcompinit\n" + bash)
    return bash


def _word(text: str) -> str:
    """``text`` quoted for bash and zsh (single quotes: nothing inside is special)."""
    return "'" + text.replace("'", "'\\''") + "'"


def _fish_word(text: str) -> str:
    """``text`` quoted for fish (single quotes, where backslash escapes ' and itself)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _node(path: tuple[str, ...]) -> str:
    return " ".join(path)


def _bash(commands: list[Command]) -> str:
    descend = []
    skips = []
    values = []
    lists = []
    for command in commands:
        node = _node(command.path)
        for name, _ in command.subcommands:
            descend.append(f"            {_word(node + ':' + name)}) "
                           f"node={_word(_node((*command.path, name)))} ;;")
        valued = [n for o in command.options if o.takes_value for n in o.names]
        if valued:
            skips.append("            " + "|".join(_word(node + ":" + n) for n in valued)
                         + ") ((i++)) ;;")
        for option in command.options:
            if not option.takes_value:
                continue
            keys = "|".join(_word(node + ":" + n) for n in option.names)
            if option.choices:
                values.append(f"        {keys}) COMPREPLY=($(compgen -W "
                              f"{_word(' '.join(option.choices))} -- \"$cur\")); return ;;")
            else:
                values.append(f"        {keys}) COMPREPLY=(); return ;;")
        opts = " ".join(n for o in command.options for n in o.names)
        subs = " ".join(name for name, _ in command.subcommands)
        lists.append(f"        {_word(node)}) opts={_word(opts)}; subs={_word(subs)} ;;")
    return "\n".join([
        f"# {PROGRAM} completion for bash, generated from its parser.",
        f'# Load it with: eval "$({PROGRAM} completion bash)"',
        "_imagine_billing() {",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"',
        '    local node="" word i opts="" subs=""',
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        '        word="${COMP_WORDS[i]}"',
        '        case "$node:$word" in',
        *descend,
        *skips,
        "        esac",
        "    done",
        '    case "$node:$prev" in',
        *values,
        "    esac",
        '    case "$node" in',
        *lists,
        "    esac",
        '    if [[ "$cur" == -* ]]; then',
        '        COMPREPLY=($(compgen -W "$opts" -- "$cur"))',
        "    else",
        '        COMPREPLY=($(compgen -W "$subs" -- "$cur"))',
        "    fi",
        "}",
        f"complete -o default -F _imagine_billing {PROGRAM}",
        "",
    ])


def _fish(commands: list[Command]) -> str:
    lines = [f"# {PROGRAM} completion for fish, generated from its parser.",
             f"# Save it as ~/.config/fish/completions/{PROGRAM}.fish"]
    for command in commands:
        # Command names are plain words (letters, digits, '-'): no quoting inside -n.
        conditions = [f"__fish_seen_subcommand_from {w}" for w in command.path]
        subs = " ".join(name for name, _ in command.subcommands)
        if subs:
            conditions.append(f"not __fish_seen_subcommand_from {subs}")
        here = "; and ".join(conditions) or "true"
        if subs:  # a command group: its words are subcommands, not files
            lines.append(f"complete -c {PROGRAM} -n {_fish_word(here)} -f")
        for name, what in command.subcommands:
            lines.append(f"complete -c {PROGRAM} -n {_fish_word(here)} -a {_fish_word(name)} "
                         f"-d {_fish_word(what)}")
        for option in command.options:
            spelled = " ".join(f"-l {_fish_word(n[2:])}" if n.startswith("--")
                               else f"-s {_fish_word(n[1:])}" for n in option.names)
            value = ""
            if option.takes_value:
                value = (f" -x -a {_fish_word(' '.join(option.choices))}" if option.choices
                         else " -r -F")
            lines.append(f"complete -c {PROGRAM} -n {_fish_word(here)} {spelled}{value} "
                         f"-d {_fish_word(option.help[:80])}")
    return "\n".join(lines) + "\n"
