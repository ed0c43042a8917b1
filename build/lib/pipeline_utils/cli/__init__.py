"""The command-line interface: the same functions the notebooks call, one command each."""

from __future__ import annotations

import importlib
import os
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
    "monitor": "pipeline_utils.cli.monitor_cmds:monitor",
    "train": "pipeline_utils.cli.train_cmds:train",
    "runtime": "pipeline_utils.cli.runtime_cmds:runtime",
    "runs": "pipeline_utils.cli.runs_cmds:runs",
    "pipeline": "pipeline_utils.cli.pipeline_cmds:pipeline",
    "version": "pipeline_utils.cli.version_cmd:version",
}


class LazyGroup(click.Group):
    """Imports a command's module only when that command runs (click's lazy-loading pattern): fast start-up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attribute = COMMANDS[cmd_name].split(":")
        return getattr(importlib.import_module(module_name), attribute)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, "-V", "--version", prog_name="run_pipeline")
def cli() -> None:
    """Deploy and monitor trained models through papermill-executed notebooks.

    State lives under $MLOPS_HOME (default ~/.mlops); the backend is $MLOPS_BACKEND (default local).
    """


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one line and exit 1."""
    try:
        code = cli.main(args=argv, prog_name="run_pipeline.py", standalone_mode=False)
    except PipelineError as exc:
        err_console.print(f"[bold red]error:[/bold red] {exc}", highlight=False)
        return 1
    except click.exceptions.Abort:
        err_console.print("[bold red]error:[/bold red] aborted")
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("[bold red]error:[/bold red] interrupted")
        return 130
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


if __name__ == "__main__":
    sys.exit(main())
