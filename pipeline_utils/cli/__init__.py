"""The command-line interface: the same functions the notebooks call, one command each."""

from __future__ import annotations

import importlib
import os
import signal
import sys

import click

from pipeline_utils import __version__
from pipeline_utils.cli.output import err_console
from pipeline_utils.errors import PipelineError

COMMANDS = {
    "prepare": "pipeline_utils.cli.prepare_cmds:prepare",
    "config": "pipeline_utils.cli.config_cmds:config",
    "space": "pipeline_utils.cli.space_cmds:space",
    "deploy": "pipeline_utils.cli.deploy_cmds:deploy",
    "endpoint": "pipeline_utils.cli.endpoint_cmds:endpoint",
    "monitor": "pipeline_utils.cli.monitor_cmds:monitor",
    "train": "pipeline_utils.cli.train_cmds:train",
    "rollout": "pipeline_utils.cli.rollout_cmds:rollout",
    "runs": "pipeline_utils.cli.runs_cmds:runs",
    "pipeline": "pipeline_utils.cli.pipeline_cmds:pipeline",
    "version": "pipeline_utils.cli.version_cmd:version",
    "doctor": "pipeline_utils.cli.doctor_cmd:doctor",
}


PLUGIN_COMMANDS_GROUP = "mlops.commands"
EXIT_INTERRUPTED = 130


def _plugin_commands() -> dict[str, str]:
    """Command groups that installed backends add (entry points ``mlops.commands``), e.g. the local ``runtime``."""
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=PLUGIN_COMMANDS_GROUP) if ep.name not in COMMANDS}


class CommandInterrupted(Exception):
    """Ctrl-C inside a command, carried past click (which would turn it into ``Abort`` after a blank line)."""

    def __init__(self, cause: KeyboardInterrupt) -> None:
        super().__init__("interrupted")
        self.cause = cause


class LazyGroup(click.Group):
    """Imports a command's module only when that command runs (click's lazy-loading pattern): fast start-up."""

    def invoke(self, ctx: click.Context) -> object:
        """Run the command; Ctrl-C leaves as ``CommandInterrupted`` so that ``main`` reports it in one line."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise CommandInterrupted(exc) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *_plugin_commands()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name) or _plugin_commands().get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        return getattr(importlib.import_module(module_name), attribute)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, "-V", "--version", prog_name="run_pipeline")
def cli() -> None:
    """Deploy and monitor trained models through papermill-executed notebooks.

    State lives under $MLOPS_HOME (default ~/.mlops); the backend is $MLOPS_BACKEND (default local).
    """


def main(argv: list[str] | None = None, prog_name: str = "run_pipeline.py") -> int:
    """Run the CLI; a user error prints one line and exits with its type's code (see ``pipeline_utils.errors``).

    Ctrl-C prints one line and exits 130 (``EXIT_INTERRUPTED``); commands may exit with codes of their own
    (``monitor run``: 10 and 11).
    """
    try:
        code = cli.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except PipelineError as exc:
        err_console.print(f"[bold red]error:[/bold red] {exc}", highlight=False)
        return exc.exit_code
    except CommandInterrupted as exc:
        return _interrupted(exc.cause, prog_name)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):
            return _interrupted(exc.__cause__, prog_name)
        err_console.print("[bold red]error:[/bold red] aborted")
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt as exc:
        return _interrupted(exc, prog_name)
    except Exception as exc:
        if os.environ.get("MLOPS_DEBUG"):
            raise
        message = " ".join(str(exc).split())
        err_console.print(
            f"[bold red]error:[/bold red] unexpected {type(exc).__name__}: {message}"
            " (MLOPS_DEBUG=1 shows the traceback)",
            highlight=False,
        )
        return 1
    return code if isinstance(code, int) else 0


def _interrupted(cause: KeyboardInterrupt, prog_name: str) -> int:
    """Ctrl-C: one line (what keeps running, and how to stop it), exit 130; a second Ctrl-C is ignored meanwhile."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        from pipeline_utils.cli.common import interrupted_line

        err_console.print(interrupted_line(cause, prog_name), highlight=False, markup=False)
    finally:
        signal.signal(signal.SIGINT, previous)
    return EXIT_INTERRUPTED


def console_main() -> None:
    """The ``mlops`` console script: the same CLI as ``python run_pipeline.py``."""
    sys.exit(main(prog_name="mlops"))


if __name__ == "__main__":
    sys.exit(main())
