"""Secret values never show unmasked in a job's log (as written), ``train logs``, streamed output or errors."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from pipeline_utils.errors import PipelineError
from pipeline_utils.masking import MASK
from pipeline_utils.training import JobStatus, build_job_spec
from tests.conftest import run_cli as cli

ROOT = Path(__file__).resolve().parents[2]
SECRET = "tok-8c1f-77aa-secret"
RUNNER_SECRET = "runner-pass-4e9d-value"

PRINTS_ITS_ENV = """
import os, sys, time
value = os.environ["TRAIN_TOKEN"]
print("token is", value, flush=True)
sys.stdout.write("split " + value[:6])
sys.stdout.flush()
time.sleep(0.3)
sys.stdout.write(value[6:] + " end\\n")
sys.stdout.flush()
print("runner secret:", os.environ.get("RUNNER_TOKEN", "absent"), flush=True)
raise SystemExit("failed with " + value)
"""


def _files_holding(root: Path, value: str) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file() and value.encode() in path.read_bytes()]


def test_job_log_is_masked_as_written_and_everywhere_it_is_read(scripts, runner, mlops_home, monkeypatch):
    monkeypatch.setenv("RUNNER_TOKEN", RUNNER_SECRET)
    monkeypatch.setenv("MLOPS_SECRET_NAMES", "RUNNER_TOKEN")
    folder = scripts({"train.py": PRINTS_ITS_ENV})
    job = runner.submit(build_job_spec(scripts_dir=folder, main_file="train.py", env={"TRAIN_TOKEN": SECRET}))
    info = runner.wait(job.job_id, timeout=60)
    assert info.status is JobStatus.FAILED
    written = info.workers[0].log_path.read_text()
    assert SECRET not in written and f"token is {MASK}" in written and f"split {MASK} end" in written
    assert "runner secret: absent" in written, "the runner's own secrets are not handed to the job"
    assert f"failed with {MASK}" in info.log_tail and SECRET not in info.log_tail
    lines = list(runner.logs(job.job_id))
    assert f"token is {MASK}" in lines and not any(SECRET in line for line in lines)
    with pytest.raises(PipelineError) as caught:
        info.check()
    assert SECRET not in str(caught.value) and MASK in str(caught.value)
    shown = cli("train", "logs", job.job_id)
    assert shown.returncode == 0 and f"token is {MASK}" in shown.stdout and SECRET not in shown.stdout
    assert _files_holding(mlops_home, SECRET) == []


def test_train_submit_streams_the_job_log_masked(tmp_path, mlops_home):
    folder = tmp_path / "scripts"
    folder.mkdir()
    (folder / "main.py").write_text(PRINTS_ITS_ENV.replace('raise SystemExit("failed with " + value)', ""))
    result = cli("train", "submit", "--scripts-dir", folder, "--main-file", "main.py", "--msd-env",
                 f"TRAIN_TOKEN={SECRET}")
    assert result.returncode == 0, result.stderr
    assert f"token is {MASK}" in result.stderr and f"split {MASK} end" in result.stderr
    assert SECRET not in result.stderr and SECRET not in result.stdout
    assert _files_holding(mlops_home, SECRET) == []


def test_a_failing_job_error_line_is_masked(tmp_path, mlops_home):
    folder = tmp_path / "scripts"
    folder.mkdir()
    (folder / "main.py").write_text(PRINTS_ITS_ENV)
    result = cli("train", "submit", "--scripts-dir", folder, "--main-file", "main.py", "--msd-env",
                 f"TRAIN_TOKEN={SECRET}")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: A1_Submit_Training.ipynb failed")
    assert SECRET not in result.stderr and f"failed with {MASK}" in result.stderr


STREAMING_RUN = """
import sys
from pipeline_utils.notebooks import run_notebook
result = run_notebook(sys.argv[1], secrets={"CELL_TOKEN": sys.argv[2]}, stream_output=True, progress=False)
print(result.output_path)
"""

PRINTING_CELLS = [
    "import os, sys, time\nvalue = os.environ['CELL_TOKEN']",
    "print('whole', value)",
    "sys.stdout.write('halves ' + value[:5])\nsys.stdout.flush()\ntime.sleep(0.3)\nprint(value[5:], 'end')",
    "print('to stderr', value, file=sys.stderr)",
    "value",
]


def test_streamed_cell_output_is_masked(tmp_path, mlops_home):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in PRINTING_CELLS])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "prints_a_secret.ipynb"
    nbformat.write(notebook, path)
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(STREAMING_RUN), str(path), SECRET],
                            capture_output=True, text=True, cwd=ROOT, timeout=180)
    assert result.returncode == 0, result.stderr
    streamed = result.stderr
    assert SECRET not in streamed
    assert f"whole {MASK}" in streamed and f"to stderr {MASK}" in streamed and f"'{MASK}'" in streamed
    assert "halves" in streamed and "end" in streamed and SECRET[:5] not in streamed
    executed = Path(result.stdout.strip().splitlines()[-1])
    assert SECRET not in executed.read_text() and MASK in executed.read_text()


def test_a_secret_too_short_to_mask_is_refused_before_anything_runs(scripts, tmp_path, mlops_home):
    folder = scripts({"train.py": "print('hi')\n"})
    with pytest.raises(PipelineError, match=r"^env: SHORT: .*too short to mask") as caught:
        build_job_spec(scripts_dir=folder, main_file="train.py", env={"SHORT": "ab1"})
    assert "ab1" not in str(caught.value)
    result = cli("train", "submit", "--scripts-dir", folder, "--main-file", "train.py", "--msd-env", "SHORT=ab1")
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: SHORT: ") and "too short to mask" in last and "ab1" not in result.stderr
    assert json.loads(cli("train", "list", "--json").stdout) == []


def _streamed(pieces: list[str], values: list[str]) -> str:
    from pipeline_utils.masking import StreamMasker

    masker = StreamMasker(values)
    return "".join(masker.feed(piece) for piece in pieces) + masker.finish()


def test_a_secret_split_anywhere_across_pieces_is_masked_whole():
    text = f"a {SECRET} b {SECRET}"
    for first in range(len(text) + 1):
        for second in range(first, len(text) + 1):
            pieces = [text[:first], text[first:second], text[second:]]
            assert _streamed(pieces, [SECRET]) == f"a {MASK} b {MASK}", pieces


def test_stream_masking_agrees_with_masking_whole_text_and_holds_back_only_a_possible_secret():
    from pipeline_utils.masking import StreamMasker, mask

    values = ["abcdef", "bc", 'quo"te']
    text = 'xabcdex abcdefg bcd quo"te "quo\\"te" abcab'
    whole = mask(text, values)
    assert whole == f'xa{MASK}dex {MASK}g {MASK}d {MASK} "{MASK}" a{MASK}ab'
    assert _streamed(list(text), values) == whole
    masker = StreamMasker(["abcdef"])
    assert masker.feed("loss 0.25\n") == "loss 0.25\n"
    assert masker.feed("token abc") == "token " and masker.finish() == "abc"


def test_job_output_that_is_not_utf8_reaches_the_log_unchanged(scripts, runner):
    folder = scripts({"train.py": "import sys\nsys.stdout.buffer.write(b'raw \\xff\\xfe bytes\\n')\n"})
    job = runner.submit(build_job_spec(scripts_dir=folder, main_file="train.py", env={"TRAIN_TOKEN": SECRET}))
    info = runner.wait(job.job_id, timeout=60)
    assert info.status is JobStatus.FINISHED
    assert info.workers[0].log_path.read_bytes() == b"raw \xff\xfe bytes\n"


def test_streamed_output_of_overlapping_runs_masks_the_secrets_of_both(capsys):
    import logging

    from pipeline_utils.masking import MaskedStreamHandler

    other = "other-run-secret-31"
    logger = logging.getLogger("tests.masked-stream")
    before = (logger.level, logger.propagate)
    handler = MaskedStreamHandler()
    with handler.masking(logger, [SECRET]):
        logger.info("first " + SECRET[:6])
        with handler.masking(logger, [other]):
            logger.info(SECRET[6:] + " then " + other + "\n")
            logger.warning("'" + other + "'")
        logger.info("last " + other + " " + SECRET)
    assert handler not in logger.handlers and (logger.level, logger.propagate) == before
    shown = capsys.readouterr().err
    assert shown == f"first \n{MASK} then {MASK}\n'{MASK}'\nlast {other} {MASK}\n", "a record ends no line"
