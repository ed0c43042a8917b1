"""Run a notebook with papermill, keep the executed copy as the audit record, index the run.

Secrets never travel as papermill parameters: they reach the kernel as environment
variables only, and any value of theirs that a notebook printed is masked (one rule,
:mod:`pipeline_utils.masking`) in the executed copy, in streamed cell output and in error messages.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline_utils import masking
from pipeline_utils.errors import PipelineError
from pipeline_utils.notebooks import runs

RUN_ID_ENV = "MLOPS_RUN_ID"
SCRAP_MIMETYPE_PREFIX = "application/scrapbook.scrap."
PROJECT_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = (
    PROJECT_ROOT / "notebooks"
    if (PROJECT_ROOT / "notebooks").is_dir()
    else Path(__file__).resolve().parents[1] / "_notebooks"
)
DEFAULT_CELL_TIMEOUT = 600
DEFAULT_START_TIMEOUT = 60
SHUTDOWN_INTERRUPT_LINE = "KeyboardInterrupt caught in kernel"
_ENV_LOCK = threading.Lock()


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a notebook; its run is recorded as interrupted (``run_id``) before this is raised."""

    def __init__(self, run_id: str, notebook: str, output_path: Path) -> None:
        super().__init__(f"{notebook} interrupted")
        self.run_id = run_id
        self.notebook = notebook
        self.output_path = output_path


@dataclass(frozen=True)
class NotebookResult:
    """The outcome of one executed notebook."""

    run_id: str
    notebook: str
    output_path: Path
    status: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when every cell ran without error."""
        return self.status == runs.SUCCEEDED

    def scraps(self) -> dict:
        """The values the notebook recorded with scrapbook ``glue``."""
        return read_scraps(self.output_path)


def notebook_path(name: str) -> Path:
    """A pipeline notebook shipped in ``notebooks/`` (the ``.ipynb`` suffix is optional)."""
    filename = name if name.endswith(".ipynb") else f"{name}.ipynb"
    return NOTEBOOKS_DIR / filename


def read_scraps(path: str | Path) -> dict:
    """Read glued values from an executed notebook without running anything.

    Text and JSON scraps (what :func:`pipeline_utils.notebooks.record.glue` writes) are read
    directly; a notebook holding scraps of other scrapbook encoders is read with scrapbook.
    """
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        notebook = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PipelineError(f"{path}: cannot read recorded values ({exc})") from None
    scraps, other_encoders = {}, False
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            for mimetype, payload in (output.get("data") or {}).items():
                if not mimetype.startswith(SCRAP_MIMETYPE_PREFIX) or not isinstance(payload, dict):
                    continue
                if payload.get("encoder") in ("json", "text"):
                    scraps[payload.get("name")] = payload.get("data")
                else:
                    other_encoders = True
    return _read_scraps_with_scrapbook(path) if other_encoders else scraps


def _read_scraps_with_scrapbook(path: Path) -> dict:
    import scrapbook

    try:
        return dict(scrapbook.read_notebook(str(path)).scraps.data_dict)
    except Exception as exc:
        raise PipelineError(f"{path}: cannot read recorded values ({type(exc).__name__}: {exc})") from None


def _check_parameters(parameters: Mapping, secret_values: list[str]) -> None:
    text = json.dumps(parameters, default=str)
    for value in secret_values:
        if value in text:
            raise PipelineError("parameters: a secret value was passed as a notebook parameter; pass it as a secret")


@contextlib.contextmanager
def _kernel_environment(extra: Mapping[str, str]) -> Iterator[None]:
    """Give the kernel about to start these variables; put our own environment back afterwards."""
    with _ENV_LOCK:
        saved = {key: os.environ.get(key) for key in extra}
        os.environ.update(extra)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _import_papermill():
    """Import papermill without its optional HDFS handler.

    papermill imports ``pyarrow.fs`` (with numpy, about 0.2 s) whenever pyarrow is installed, for
    ``hdfs://`` paths, which the pipeline never uses; the handler is left out for this one import
    and ``pyarrow.fs`` stays importable for everyone else.
    """
    if "papermill" in sys.modules:
        return sys.modules["papermill"]
    hide = "pyarrow.fs" not in sys.modules
    if hide:
        sys.modules["pyarrow.fs"] = None
    try:
        import papermill
    finally:
        if hide:
            del sys.modules["pyarrow.fs"]
    return papermill


def _ipc_kernel_manager(folder: Path, log_path: Path):
    """A kernel manager talking to the kernel over Unix sockets in ``folder`` (mode 0700), not loopback TCP.

    The kernel's own stdout and stderr (its log, e.g. the tracebacks of a kernel shut down mid-cell) go to
    ``log_path``, never to the terminal; cell output reaches the executed notebook as usual.
    """
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import Unicode

    class IPCKernelManager(AsyncKernelManager):
        transport = Unicode("ipc")

        def _ip_default(self) -> str:
            return str(folder / "kernel")

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
            with open(log_path, "ab") as log:
                await super()._async_launch_kernel(kernel_cmd, **{**kw, "stdout": log, "stderr": log})

    return IPCKernelManager


_INTERRUPTED = threading.Event()
_NOISY_LOGGERS = ("asyncio", "papermill", "nbclient", "traitlets", "jupyter_client")


def _quiet_after_interrupt(record: object) -> bool:
    """A logging filter: once Ctrl-C was pressed, kernel shut-down noise (a kernel that died of the same Ctrl-C,
    nbclient's unretrieved task) stays off the terminal; the run's one line says what happened."""
    return not _INTERRUPTED.is_set()


def _silence_noise_after_interrupt() -> None:
    import logging

    for name in _NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if _quiet_after_interrupt not in logger.filters:
            logger.addFilter(_quiet_after_interrupt)


@contextlib.contextmanager
def _interrupt_once() -> Iterator[None]:
    """The first Ctrl-C interrupts; later ones are ignored until the block (which records the end) is over.

    Only in the main thread and when Ctrl-C raises KeyboardInterrupt there (not where SIGINT is ignored).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:
        yield
        return

    def first_interrupt(signum, frame) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _INTERRUPTED.set()
        raise KeyboardInterrupt

    _silence_noise_after_interrupt()
    signal.signal(signal.SIGINT, first_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


_CELL_OUTPUT = masking.MaskedStreamHandler()
_CELL_OUTPUT.addFilter(lambda record: not str(record.msg).startswith(("Executing Cell", "Ending Cell")))


def _streamed_cell_output(enabled: bool, secret_values: list[str]) -> contextlib.AbstractContextManager:
    """Show cell output live on stderr, secrets masked (papermill logs it at INFO on its own logger)."""
    import logging

    return _CELL_OUTPUT.masking(logging.getLogger("papermill"), secret_values) if enabled else contextlib.nullcontext()


def _publish(working_copy: Path, target: Path, secret_values: list[str]) -> None:
    """Move a file from the run's private folder into ``runs/``, secrets masked first, in one atomic write:
    nothing unmasked is ever readable there, not even while the notebook runs (papermill saves every cell)."""
    from pipeline_utils.fsutil import atomic_write_text

    _scrub_file(working_copy, secret_values)
    atomic_write_text(target, working_copy.read_text(encoding="utf-8"))


def _keep_kernel_log(path: Path, target: Path, secret_values: list[str]) -> None:
    """Keep the kernel's log beside the executed copy only when it says something (secrets masked).

    The line ipykernel logs when jupyter_client interrupts it on the way to shutting it down is the runner's
    own doing, not the notebook's: it is left out (a quiet notebook then keeps no log).
    """
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    said = [line for line in lines if SHUTDOWN_INTERRUPT_LINE not in line]
    if not "".join(said).strip():
        return
    if len(said) != len(lines):
        path.write_text("".join(said), encoding="utf-8")
    _publish(path, target, secret_values)


def _scrub_file(path: Path, secret_values: list[str]) -> None:
    if not secret_values or not path.is_file():
        return
    from pipeline_utils.fsutil import atomic_write_text

    text = path.read_text(encoding="utf-8")
    masked = masking.mask(text, secret_values)
    if masked != text:
        atomic_write_text(path, masked)


def _one_line_error(notebook: str, exc: BaseException) -> str:
    return " ".join(_error_text(notebook, exc).split())


def _error_text(notebook: str, exc: BaseException) -> str:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        reason = f"{exc.ename}: {exc.evalue}" if exc.evalue else exc.ename
        return f"{notebook} failed in cell {exc.exec_count}: {reason}"
    name = type(exc).__name__
    if "Timeout" in name:
        return f"{notebook} failed: a cell ran past the timeout ({exc})"
    if "DeadKernel" in name:
        return f"{notebook} failed: the kernel died ({exc})"
    return f"{notebook} failed: {name}: {exc}"


def run_notebook(
    notebook: str | Path,
    parameters: Mapping | None = None,
    *,
    secrets: Mapping[str, str] | None = None,
    run_id: str | None = None,
    kind: str | None = None,
    report_mode: bool = False,
    cell_timeout: float | None = DEFAULT_CELL_TIMEOUT,
    start_timeout: float = DEFAULT_START_TIMEOUT,
    cwd: str | Path | None = None,
    progress: bool | None = None,
    stream_output: bool = False,
) -> NotebookResult:
    """Execute ``notebook`` with papermill into ``runs/<run-id>/``; never raises for a failing notebook.

    Without ``run_id`` it joins the run of the notebook that called it (``MLOPS_RUN_ID``),
    or starts a new run of its own. Ctrl-C ends the notebook, records it (and a run of its own) as
    interrupted, and raises :class:`RunInterrupted`.
    """
    papermill = _import_papermill()
    source = Path(notebook) if Path(notebook).suffix == ".ipynb" else notebook_path(str(notebook))
    if not source.is_file():
        raise PipelineError(f"notebook: {source}: no such notebook")
    parameters = dict(parameters or {})
    secrets = {k: str(v) for k, v in (secrets or {}).items()}
    inherited = masking.inherited_secrets(os.environ)
    secret_values = masking.secret_values({**inherited, **secrets})
    _check_parameters(parameters, secret_values)
    with _interrupt_once(), _streamed_cell_output(stream_output, secret_values):
        own_run = False
        run_id = run_id or os.environ.get(RUN_ID_ENV)
        if not run_id:
            run_id, own_run = runs.start_run(kind or source.stem, parameters), True
        seq, output = runs.start_notebook(run_id, source.name, parameters)
        environment = {
            **secrets,
            RUN_ID_ENV: run_id,
            masking.SECRET_NAMES_ENV: ",".join(sorted({*inherited, *secrets})),
        }
        status, error = runs.INTERRUPTED, f"{source.name} interrupted"
        private = Path(tempfile.mkdtemp(prefix="mlops-kernel-"))
        working_copy, kernel_log = private / output.name, private / output.with_suffix(".kernel.log").name
        try:
            with _kernel_environment(environment):
                papermill.execute_notebook(
                    str(source),
                    str(working_copy),
                    parameters=parameters,
                    kernel_name="python3",
                    report_mode=report_mode,
                    execution_timeout=cell_timeout,
                    start_timeout=start_timeout,
                    progress_bar=sys.stderr.isatty() if progress is None else progress,
                    cwd=str(cwd) if cwd else None,
                    log_output=stream_output,
                    kernel_manager_class=_ipc_kernel_manager(private, kernel_log),
                )
            status, error = runs.SUCCEEDED, None
        except KeyboardInterrupt:
            status, error = runs.INTERRUPTED, f"{source.name} interrupted"
        except Exception as exc:
            status, error = runs.FAILED, masking.mask(_one_line_error(source.name, exc), secret_values)
        finally:
            if not working_copy.exists():
                shutil.copyfile(source, working_copy)
            _publish(working_copy, output, secret_values)
            _keep_kernel_log(kernel_log, output.with_suffix(".kernel.log"), secret_values)
            shutil.rmtree(private, ignore_errors=True)
            runs.finish_notebook(run_id, seq, status, error)
            if own_run:
                runs.finish_run(run_id, status, error)
    if status == runs.INTERRUPTED:
        raise RunInterrupted(run_id, source.name, output)
    return NotebookResult(run_id, source.name, output, status, error)
