"""The papermill runner: executed copies, the run index, secrets, failures and timeouts."""

from __future__ import annotations

import json
import os
import stat
import sys

import nbformat
import pytest

from pipeline_utils.notebooks import get_run, list_runs, read_scraps, run_notebook


def make_notebook(path, *sources, parameters="x = 1"):
    cells = [nbformat.v4.new_code_cell(parameters)]
    cells[0].metadata["tags"] = ["parameters"]
    cells += [nbformat.v4.new_code_cell(source) for source in sources]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path


def test_executed_copy_run_index_and_scraps(tmp_path, mlops_home):
    source = make_notebook(tmp_path / "double.ipynb", "import scrapbook as sb\nsb.glue('doubled', x * 2)")
    result = run_notebook(source, {"x": 21})
    assert result.ok and result.output_path == mlops_home / "runs" / result.run_id / "double.ipynb"
    executed = nbformat.read(result.output_path, as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    assert read_scraps(result.output_path) == {"doubled": 42}
    run = get_run(result.run_id)
    assert run.status == "succeeded" and run.parameters == {"x": 21} and run.duration_s > 0
    assert [nb.notebook for nb in run.notebooks] == ["double.ipynb"]
    assert list_runs()[0].id == result.run_id


def test_run_ids_sort_by_time(tmp_path):
    source = make_notebook(tmp_path / "n.ipynb", "pass")
    first, second = run_notebook(source).run_id, run_notebook(source).run_id
    assert first < second
    assert [r.id for r in list_runs()] == [second, first]


def test_secrets_reach_the_kernel_only_through_the_environment(tmp_path, mlops_home):
    secret, custom = "s3cr3t-api-key-value", "custom-arg-value-99"
    source = make_notebook(
        tmp_path / "secret.ipynb",
        "import os, scrapbook as sb\n"
        "sb.glue('has_key', os.environ['CPD_API_KEY'] == 's3cr3t-api-key-value'[:0] + os.environ['CPD_API_KEY'])\n"
        "sb.glue('key_length', len(os.environ['CPD_API_KEY']))\n"
        "print('the key is', os.environ['CPD_API_KEY'], 'and', os.environ['TOKEN_X'])",
        "raise RuntimeError('failed with ' + os.environ['TOKEN_X'])",
    )
    result = run_notebook(source, {"x": 2}, secrets={"CPD_API_KEY": secret, "TOKEN_X": custom})
    assert not result.ok and "failed with ********" in result.error
    assert result.scraps()["key_length"] == len(secret)
    assert secret not in os.environ.get("CPD_API_KEY", "")
    for path in mlops_home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert secret.encode() not in data and custom.encode() not in data, path


def test_credentials_in_the_callers_environment_are_masked_unnamed(tmp_path, mlops_home, monkeypatch):
    key, token = "cpd-key-from-the-shell-1234", "eyJ-user-access-token-5678"
    monkeypatch.setenv("CPD_API_KEY", key)
    monkeypatch.setenv("USER_ACCESS_TOKEN", token)
    monkeypatch.delenv("MLOPS_SECRET_NAMES", raising=False)
    source = make_notebook(
        tmp_path / "creds.ipynb", "import os\nprint(os.environ['CPD_API_KEY'], os.environ['USER_ACCESS_TOKEN'])"
    )
    result = run_notebook(source)
    assert result.ok, result.error
    text = result.output_path.read_text()
    assert key not in text and token not in text and "******** ********" in text


def test_a_secret_passed_as_a_parameter_is_refused(tmp_path):
    source = make_notebook(tmp_path / "n.ipynb", "pass")
    with pytest.raises(Exception, match="secret value was passed as a notebook parameter"):
        run_notebook(source, {"x": "abc-secret"}, secrets={"KEY": "abc-secret"})


def test_a_failing_notebook_keeps_its_copy_and_reports_one_line(tmp_path):
    source = make_notebook(tmp_path / "fail.ipynb", "y = 1", "raise ValueError('bad input\\nsecond line')")
    result = run_notebook(source)
    assert result.status == "failed"
    assert result.error == "fail.ipynb failed in cell 3: ValueError: bad input second line"
    executed = nbformat.read(result.output_path, as_version=4)
    assert any(o.get("ename") == "ValueError" for c in executed.cells for o in c.get("outputs", []))
    assert get_run(result.run_id).status == "failed"


def test_a_hanging_cell_ends_the_run_as_failed(tmp_path):
    source = make_notebook(tmp_path / "hang.ipynb", "import time\ntime.sleep(120)")
    result = run_notebook(source, cell_timeout=3)
    assert result.status == "failed" and "timeout" in result.error.lower()
    assert result.output_path.exists()


def test_a_dying_kernel_ends_the_run_as_failed(tmp_path):
    source = make_notebook(tmp_path / "die.ipynb", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    result = run_notebook(source, cell_timeout=60)
    assert result.status == "failed" and "die.ipynb failed" in result.error
    assert get_run(result.run_id).status == "failed"


def test_report_mode_hides_inputs(tmp_path):
    source = make_notebook(tmp_path / "report.ipynb", "print('visible output')")
    result = run_notebook(source, report_mode=True)
    executed = nbformat.read(result.output_path, as_version=4)
    assert all(c.metadata.get("jupyter", {}).get("source_hidden") for c in executed.cells if c.cell_type == "code")


def test_nested_notebooks_join_the_calling_run(tmp_path):
    inner = make_notebook(tmp_path / "inner.ipynb", "import scrapbook as sb\nsb.glue('inner_x', x)")
    outer = make_notebook(
        tmp_path / "outer.ipynb",
        f"from pipeline_utils.notebooks import run_notebook\nr = run_notebook({str(inner)!r}, {{'x': 7}})\n"
        "assert r.ok, r.error",
    )
    result = run_notebook(outer)
    assert result.ok, result.error
    run = get_run(result.run_id)
    assert [nb.notebook for nb in run.notebooks] == ["outer.ipynb", "inner.ipynb"]
    assert read_scraps(run.notebooks[1].path) == {"inner_x": 7}
    assert json.loads(json.dumps(run.notebooks[1].parameters)) == {"x": 7}


def test_runs_cli_lists_and_shows_recorded_values(tmp_path, cli):
    source = make_notebook(tmp_path / "glue.ipynb", "import scrapbook as sb\nsb.glue('answer', 42)")
    run_id = run_notebook(source, {"x": 3}).run_id
    listed = json.loads(cli("runs", "list", "--json").out)
    assert listed[0]["id"] == run_id and listed[0]["status"] == "succeeded"
    shown = json.loads(cli("runs", "show", run_id[:20], "--json").out)
    assert shown["parameters"] == {"x": 3}
    assert shown["notebooks"][0]["scraps"] == {"answer": 42}
    missing = cli("runs", "show", "nope")
    assert missing.code == 3 and missing.err.strip() == "error: RUN_ID: no run 'nope'"
    assert sys.executable


def test_recorded_values_are_readable_by_scrapbook(tmp_path):
    source = make_notebook(
        tmp_path / "record.ipynb",
        "from pipeline_utils.notebooks.record import glue\n"
        "glue('text', 'a string'); glue('number', 4.5); glue('mapping', {'a': [1, 2]}); glue('flag', True)",
        "try:\n    glue('bad', object())\nexcept TypeError as exc:\n    glue('error', str(exc))",
    )
    result = run_notebook(source)
    assert result.ok, result.error
    scraps = read_scraps(result.output_path)
    assert scraps == {"text": "a string", "number": 4.5, "mapping": {"a": [1, 2]}, "flag": True,
                      "error": scraps["error"]}
    assert "not JSON-serializable" in scraps["error"]


def test_values_glued_with_scrapbook_itself_are_read(tmp_path):
    source = make_notebook(
        tmp_path / "sb.ipynb",
        "import scrapbook as sb, pandas as pd\nsb.glue('n', 3)\nsb.glue('s', 'text')",
        "sb.glue('frame', pd.DataFrame({'a': [1, 2]}), encoder='pandas')",
    )
    plain = make_notebook(tmp_path / "plain.ipynb", "import scrapbook as sb\nsb.glue('n', 3)\nsb.glue('s', 'text')")
    assert read_scraps(run_notebook(plain).output_path) == {"n": 3, "s": "text"}
    scraps = read_scraps(run_notebook(source).output_path)
    assert scraps["n"] == 3 and scraps["s"] == "text" and list(scraps["frame"]["a"]) == [1, 2]


def test_the_kernels_own_log_stays_off_the_terminal_and_beside_the_executed_copy(tmp_path, capfd):
    source = make_notebook(
        tmp_path / "noisy.ipynb",
        "get_ipython().kernel.log.error('kernel noise 4711')\nprint('cell output')",
    )
    result = run_notebook(source)
    assert result.ok, result.error
    assert "kernel noise 4711" not in capfd.readouterr().err
    assert "kernel noise 4711" in result.output_path.with_suffix(".kernel.log").read_text()
    quiet = run_notebook(make_notebook(tmp_path / "quiet.ipynb", "pass"))
    assert not quiet.output_path.with_suffix(".kernel.log").exists()


def test_notebooks_left_running_end_with_their_run(tmp_path, mlops_home):
    from pipeline_utils.notebooks import runs

    run_id = runs.start_run("test", {})
    runs.start_notebook(run_id, "outer.ipynb", {})
    runs.start_notebook(run_id, "inner.ipynb", {})
    runs.finish_run(run_id, runs.INTERRUPTED, "outer.ipynb interrupted")
    run = get_run(run_id)
    assert run.status == "interrupted" and run.started_at.endswith("+00:00")
    assert [(nb.status, nb.ended_at is not None) for nb in run.notebooks] == [("interrupted", True)] * 2


def test_runs_never_holds_an_unmasked_copy_even_while_the_notebook_runs(tmp_path, mlops_home):
    """papermill saves the executed copy after every cell: that copy stays in a private folder until scrubbed."""
    import threading
    import time

    secret = "live-secret-value-4242"
    source = make_notebook(tmp_path / "slow.ipynb", "import os\nprint(os.environ['API_TOKEN'])",
                           "import time\ntime.sleep(3)")
    seen: list[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for path in (mlops_home / "runs").rglob("*"):
                if path.is_file() and secret.encode() in path.read_bytes():
                    seen.append(str(path))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = run_notebook(source, secrets={"API_TOKEN": secret})
    finally:
        done.set()
        watcher.join()
    assert result.ok and seen == []
    assert "********" in result.output_path.read_text() and stat.S_IMODE(result.output_path.stat().st_mode) & 0o077 == 0


def test_a_secret_too_short_to_mask_is_refused_before_anything_runs(tmp_path, mlops_home):
    from pipeline_utils.errors import BadInput

    source = make_notebook(tmp_path / "n.ipynb", "pass")
    with pytest.raises(BadInput, match=r"^TOKEN: the secret value is shorter than 4 characters"):
        run_notebook(source, secrets={"TOKEN": "abc"})
    assert list_runs() == []


def test_the_interrupt_line_of_the_kernels_shutdown_is_not_kept_as_a_log(tmp_path, mlops_home):
    from pipeline_utils.notebooks.runner import _keep_kernel_log

    shutdown_only = tmp_path / "a.log"
    shutdown_only.write_text("[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel.\n")
    _keep_kernel_log(shutdown_only, tmp_path / "a.kept.log", [])
    assert not (tmp_path / "a.kept.log").exists()
    with_noise = tmp_path / "b.log"
    with_noise.write_text("kernel noise 4711\n[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel.\n")
    _keep_kernel_log(with_noise, tmp_path / "b.kept.log", [])
    assert (tmp_path / "b.kept.log").read_text() == "kernel noise 4711\n"
