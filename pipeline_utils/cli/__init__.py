"""The command-line interface: the same functions the notebooks call, one command each."""

from __future__ import annotations

import os
import sys

import click

from pipeline_utils import __version__
from pipeline_utils.cli.config_cmds import config
from pipeline_utils.cli.deploy_cmds import deploy
from pipeline_utils.cli.monitor_cmds import monitor
from pipeline_utils.cli.output import err_console
from pipeline_utils.cli.pipeline_cmds import pipeline
from pipeline_utils.cli.prepare_cmds import prepare
from pipeline_utils.cli.runs_cmds import runs
from pipeline_utils.cli.runtime_cmds import runtime
from pipeline_utils.cli.space_cmds import space, version
from pipeline_utils.cli.train_cmds import train
from pipeline_utils.errors import PipelineError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, "-V", "--version", prog_name="run_pipeline")
def cli() -> None:
    """Deploy and monitor trained models through papermill-executed notebooks.

    State lives under $MLOPS_HOME (default ~/.mlops); the backend is $MLOPS_BACKEND (default local).
    """


for command in (prepare, config, space, deploy, monitor, train, runtime, runs, pipeline, version):
    cli.add_command(command)


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
