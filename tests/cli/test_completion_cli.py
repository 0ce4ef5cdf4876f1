"""imagine-billing completion bash|zsh|fish: scripts generated from the parser."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from imagine_billing.cli.app import build_parser
from imagine_billing.cli.completion import SHELLS, commands_of
from tests.helpers import exit_code, run


def script_of(shell: str) -> str:
    result = run("completion", shell)
    assert (0, "") == (result.returncode, result.stderr)
    return result.stdout


def complete(script: Path, *words: str) -> list[str]:
    """What the bash script offers for the command line ``words`` (the last is the word
    being completed)."""
    line = ["imagine-billing", *words]
    program = (f"source {script}\nCOMP_WORDS=({' '.join(repr(w) for w in line)})\n"
               f"COMP_CWORD={len(line) - 1}\n_imagine_billing\nprintf '%s\\n' "
               '"${COMPREPLY[@]}"\n')
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True,
                          timeout=60, check=True)
    return done.stdout.split()


class TestCompletion:
    """Every command and option is in every script; the bash one runs."""

    @pytest.mark.parametrize("shell", SHELLS)
    def test_every_command_and_option(self, shell: str) -> None:
        """Each subcommand and option string of the parser appears in the script."""
        text = script_of(shell)
        commands = list(commands_of(build_parser()))
        assert len(commands) > 20
        for command in commands:
            for name, _ in command.subcommands:
                assert f"'{name}'" in text or f" {name}" in text, name
            for option in command.options:
                for spelling in option.names:
                    bare = spelling.lstrip("-")
                    assert (spelling in text if shell != "fish"
                            else f"'{bare}'" in text), (command.path, spelling)

    def test_bash_is_valid(self, tmp_path: Path) -> None:
        """bash -n accepts the bash script."""
        path = tmp_path / "c.bash"
        path.write_text(script_of("bash"))
        subprocess.run(["bash", "-n", str(path)], check=True, timeout=60)

    def test_bash_completes(self, tmp_path: Path) -> None:
        """The bash function offers subcommands, options and choices where they belong."""
        path = tmp_path / "c.bash"
        path.write_text(script_of("bash"))
        assert ["ledger"] == complete(path, "led")
        assert ["credit"] == complete(path, "ledger", "--db", "x.db", "cre")
        assert ["--key"] == complete(path, "ledger", "credit", "--ke")
        assert ["json", "markdown", "text"] == sorted(complete(path, "diff", "--format", ""))
        assert ["add", "list", "remove", "status", "update"] == sorted(
            complete(path, "budget", "--db", "add", ""))
        assert ["--prices", "--price"] == sorted(complete(path, "estimate", "--pri"),
                                                 reverse=True)

    def test_unknown_shell_is_exit_2(self) -> None:
        """A shell that is not bash, zsh or fish is bad usage."""
        assert 2 == exit_code(["completion", "tcsh"])

    def test_scripts_do_not_hold_the_environment(self, tmp_path: Path) -> None:
        """A script generated with IMAGINE_BILLING_DB set does not name its value."""
        for shell in SHELLS:
            result = run("completion", shell, env={"IMAGINE_BILLING_DB": "secret-place.db"})
            assert "secret-place" not in result.stdout
