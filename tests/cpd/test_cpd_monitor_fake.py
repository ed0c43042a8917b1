"""The cpd monitor service against the fake CPD: Watson OpenScale through the real SDK, the metrics provider
generated from this project's definitions, deployed as a WML function the fake really runs, reading the fake's
storage volume and posting its measurements back."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import httpx
import pytest

from pipeline_utils.errors import BadInput, Conflict, NotFound, Unavailable
from tests.fakes.cpd import FakeCpd
from tests.monitor.helpers import GT, PRED, write_mask

pytest.importorskip("ibm_watson_openscale", reason="the cpd extra (requirements-cpd.txt) is not installed")
pytest.importorskip("ibm_watsonx_ai", reason="the cpd extra (requirements-cpd.txt) is not installed")

from pipeline_utils.backends.cpd.monitor import OpenScaleMonitorService  # noqa: E402
from pipeline_utils.backends.cpd.provider import build_provider, module_closure  # noqa: E402
from pipeline_utils.monitor import configure_monitors, format_status  # noqa: E402

pytestmark = pytest.mark.slow

VOLUME = "TestVolume"
STRICT = {
    "IOU_positive": {"threshold": [0.4, "lower"]},  # 1/3 < 0.4: violated
    "precision": {"threshold": [50.0, "upper"]},  # 55 > 50: violated
    "recall": {"threshold": [62.5, "lower"]},  # 62.5 is not below 62.5: fine
}
LENIENT = {"IOU_positive": {"threshold": [0.2, "lower"]}}
CUSTOM_DEFINITION = '''
from pipeline_utils.monitor import files


def count(config, volume):
    return {"pairs": float(len(files.image_files(volume, config["dir_gt"]))) + OFFSET}


count.metrics = frozenset({"pairs"})
OFFSET = 0.0
'''


def config(**overrides: object) -> dict:
    """A monitor on the fake cluster's storage volume."""
    return {"dir_gt": "eval/gt", "dir_pred": "eval/pred", "most_recent": 1, "volume_display_name": VOLUME,
            "thresholds": {}} | overrides


def write_pairs(fake: FakeCpd, names: list[str], age_days: float = 0.0) -> Path:
    """Ground truth and prediction masks on the fake's storage volume (a folder of the fake)."""
    root = fake.state_dir / "volumes" / VOLUME
    for name in names:
        write_mask(root / "eval/gt" / name, GT, age_days)
        write_mask(root / "eval/pred" / name, PRED, age_days)
    return root


def service() -> OpenScaleMonitorService:
    return OpenScaleMonitorService.from_environment(os.environ)


def called(fake: FakeCpd, method: str, fragment: str) -> int:
    return sum(r["method"] == method and fragment in r["path"] for r in fake.requests())


def test_fake_openscale_monitors_run_by_the_generated_provider(fake_cpd: FakeCpd) -> None:
    write_pairs(fake_cpd, ["a.png", "b.png", "c.png"])
    bundle = os.environ.get("REQUESTS_CA_BUNDLE")
    monitors = service()
    entry = {"openscale_custom_metric_provider": {"segmentation_metrics": config(thresholds=STRICT),
                                                  "generic_metrics": config()}}

    setup = configure_monitors("dep-a", entry, "asset-1", service=monitors)

    assert os.environ.get("REQUESTS_CA_BUNDLE") == bundle
    assert monitors.client.disable_ssl_verification is False
    assert monitors.client.http_config["verify"] == str(fake_cpd.ca_file.resolve())
    assert setup.subscription_id == monitors.subscription_id("dep-a")
    assert [m.monitor_id for m in monitors.list_monitors("dep-a")] == ["generic_metrics", "segmentation_metrics"]
    runs = {run.monitor_id: run for run in setup.runs}
    seg = runs["segmentation_metrics"]
    assert seg.state == "finished" and seg.issues == 2
    assert {m.metric for m in seg.violations} == {"IOU_positive", "precision"}
    recall = next(m for m in seg.measurements if m.metric == "recall")
    assert (recall.value, recall.threshold, recall.direction, recall.violated) == (62.5, 62.5, "lower", False)
    assert seg.values["IOU_positive"] == pytest.approx(1 / 3)
    assert runs["generic_metrics"].values["num_images_total_ground_truth"] == 3.0
    assert called(fake_cpd, "POST", "/measurements") == 2  # posted by the provider, not by this process
    assert called(fake_cpd, "PATCH", "/runs/") == 2
    assert called(fake_cpd, "POST", "/predictions") == 2

    statuses = {s.monitor.monitor_id: s for s in monitors.status("dep-a")}
    assert statuses["segmentation_metrics"].latest.run_id == seg.run_id
    text = format_status(list(statuses.values()))
    assert "IOU_positive = 0.3333 violates its lower limit 0.4" in text
    (again,) = monitors.run("dep-a", "segmentation_metrics")
    history = monitors.history("dep-a", "segmentation_metrics")
    assert [r.run_id for r in history] == [seg.run_id, again.run_id]
    assert [r.run_id for r in monitors.history("dep-a", limit=1)] == [runs["generic_metrics"].run_id, again.run_id]

    assert monitors.delete("dep-a", "generic_metrics") == ["generic_metrics"]
    assert monitors.delete("dep-a") == ["segmentation_metrics"]
    assert monitors.subscription_id("dep-a") is None and monitors.list_monitors() == []
    with pytest.raises(NotFound, match="has no monitors"):
        monitors.status("dep-a")
    with pytest.raises(NotFound, match="has no monitors"):
        monitors.delete("dep-a")
    assert called(fake_cpd, "DELETE", "/ml/v4/deployments/") == 1  # the unused provider is removed


def test_fake_openscale_failures_are_failed_runs_with_their_reason(fake_cpd: FakeCpd) -> None:
    write_pairs(fake_cpd, ["a.png", "b.png"])
    monitors = service()
    monitors.create_subscription("dep-f")
    monitors.create_monitors("dep-f", {"segmentation_metrics": config()})

    (too_few,) = monitors.run("dep-f")
    assert too_few.state == "failed" and too_few.measurements == []
    assert "needs at least 3 newly created files in the past 1 days" in too_few.reason
    assert "found 2 pairs" in too_few.reason

    fake_cpd.set_faults(openscale__run_fails=1)
    (broken,) = monitors.run("dep-f")
    assert broken.state == "failed"
    assert broken.reason.startswith(f"Watson OpenScale run {broken.run_id} at {fake_cpd.url}/openscale/")
    assert "fault injected" in broken.reason and "\n" not in broken.reason
    assert [r.run_id for r in monitors.history("dep-f")] == [too_few.run_id, broken.run_id]

    (write_pairs(fake_cpd, ["c.png", "d.png"]) / "eval/pred/d.png").write_bytes(b"not a png")
    fake_cpd.control("POST", "/fake/revoke")  # every token dies: the next OpenScale call is refused, renews, retries
    assert [s.latest.run_id for s in monitors.status("dep-f")] == [broken.run_id]
    (noted,) = monitors.run("dep-f")
    assert noted.state == "finished"
    assert any(p.startswith("skipped d.png:") for p in noted.problems)
    assert monitors.status("dep-f")[0].latest.problems == noted.problems

    shutil.rmtree(fake_cpd.state_dir / "volumes" / VOLUME / "eval")
    with pytest.raises(NotFound, match=r"segmentation_metrics\.dir_gt: folder 'eval/gt' not found"):
        monitors.run("dep-f")
    assert len(monitors.history("dep-f")) == 3  # the monitor that no longer checks ran nowhere


def test_fake_openscale_replace_keeps_history_and_takes_new_thresholds(fake_cpd: FakeCpd) -> None:
    write_pairs(fake_cpd, ["a.png", "b.png", "c.png"])
    monitors = service()
    monitors.create_subscription("dep-r")
    monitors.create_monitors("dep-r", {"segmentation_metrics": config(thresholds={"IOU_positive": STRICT[
        "IOU_positive"]}), "generic_metrics": config()})
    (first,) = monitors.run("dep-r", "segmentation_metrics")
    assert first.issues == 1
    created = {m.monitor_id: m.created_at for m in monitors.list_monitors("dep-r")}

    with pytest.raises(Conflict, match=r"^openscale_custom_metric_provider\.generic_metrics: monitor already"):
        monitors.create_monitors("dep-r", {"generic_metrics": config()})
    monitors.create_monitors("dep-r", {"segmentation_metrics": config(thresholds=LENIENT),
                                       "generic_metrics_v2": config()}, replace=True)

    current = {m.monitor_id: m for m in monitors.list_monitors("dep-r")}
    assert sorted(current) == ["generic_metrics_v2", "segmentation_metrics"]
    assert current["segmentation_metrics"].config["thresholds"] == LENIENT
    assert current["segmentation_metrics"].created_at == created["segmentation_metrics"]
    (second,) = monitors.run("dep-r", "segmentation_metrics")
    assert second.issues == 0
    assert [r.run_id for r in monitors.history("dep-r", "segmentation_metrics")] == [first.run_id, second.run_id]


def test_fake_openscale_runs_the_embedded_copy_of_a_user_definition(fake_cpd: FakeCpd, tmp_path: Path) -> None:
    write_pairs(fake_cpd, ["a.png", "b.png"])
    module = tmp_path / "my_counts.py"
    module.write_text(CUSTOM_DEFINITION)
    monitors = service()
    monitors.create_subscription("dep-c")
    custom = config(definition=f"{module}:count", thresholds={"pairs": {"threshold": [5, "lower"]}})
    (instance,) = monitors.create_monitors("dep-c", {"pair_count": custom})
    assert instance.definition == f"{module}:count"
    module.write_text(CUSTOM_DEFINITION.replace("OFFSET = 0.0", "OFFSET = 100.0"))  # not redeployed

    (run,) = monitors.run("dep-c")

    assert run.values == {"pairs": 2.0} and run.issues == 1
    systems = httpx.get(f"{monitors.base_url}/integrated_systems", verify=str(fake_cpd.ca_file),
                        headers={"Authorization": f"Bearer {fake_cpd.token()}"}).json()["integrated_systems"]
    assert [s["entity"]["type"] for s in systems] == ["custom_metrics_provider"]
    assert fake_cpd.api_key not in json.dumps(systems)  # OpenScale keeps the credentials, never answers them
    kept = [p for p in fake_cpd.state_dir.rglob("*") if p.is_file() and fake_cpd.api_key.encode() in p.read_bytes()]
    assert kept == []


def test_fake_openscale_refusals_change_nothing(fake_cpd: FakeCpd, tmp_path: Path) -> None:
    write_pairs(fake_cpd, ["a.png"])
    monitors = service()
    with pytest.raises(NotFound, match="^name: deployment 'dep-x' has no monitors"):
        monitors.create_monitors("dep-x", {"generic_metrics": config()})
    monitors.create_subscription("dep-x")
    assert monitors.create_subscription("dep-x", "asset-2") == monitors.subscription_id("dep-x")
    with pytest.raises(NotFound, match=r"^openscale_custom_metric_provider\.generic_metrics\.dir_gt: folder"):
        monitors.create_monitors("dep-x", {"generic_metrics": config(dir_gt="nowhere")})
    undeclared = tmp_path / "undeclared.py"
    undeclared.write_text("def score(config, volume):\n    return {'x': 1.0}\n")
    with pytest.raises(BadInput, match=r"^openscale_custom_metric_provider\.mine: definition .* declares no `metrics`"):
        monitors.create_monitors("dep-x", {"mine": config(definition=f"{undeclared}:score")})
    token_only = fake_cpd.env(USER_ACCESS_TOKEN=fake_cpd.token(), CPD_API_KEY="", CPD_USERNAME="")
    with pytest.raises(BadInput, match="^CPD_API_KEY: is not set: OpenScale calls the metrics provider"):
        OpenScaleMonitorService.from_environment(token_only).create_monitors("dep-x", {"generic_metrics": config()})
    assert monitors.list_monitors("dep-x") == []
    assert called(fake_cpd, "POST", "/ml/v4/functions") == 0
    with pytest.raises(NotFound, match="has no monitor 'generic_metrics'"):
        monitors.run("dep-x", "generic_metrics")

    fake_cpd.set_faults(openscale__down=1)
    with pytest.raises(Unavailable) as caught:
        service().diagnose()
    message = str(caught.value)
    assert message.startswith(f"Watson OpenScale GET {fake_cpd.url}/openscale/") and "503" in message
    assert fake_cpd.api_key not in message and "\n" not in message
    assert service().diagnose().endswith("data mart 00000000-0000-0000-0000-000000000000 is active")


def test_fake_openscale_certificate_is_checked_with_the_settings(fake_cpd: FakeCpd, monkeypatch) -> None:
    monkeypatch.setenv("USER_ACCESS_TOKEN", fake_cpd.token())
    monkeypatch.setenv("CPD_API_KEY", "")
    monkeypatch.setenv("CPD_CA_BUNDLE", "")
    with pytest.raises(Unavailable, match=f"^Watson OpenScale at {fake_cpd.url}.* cannot be reached: SSLError"):
        service().diagnose()
    monkeypatch.setenv("CPD_VERIFY", "false")
    assert "is active" in service().diagnose()


def test_generated_provider_embeds_the_project_code_and_no_secret(fake_cpd: FakeCpd) -> None:
    modules = module_closure(["pipeline_utils.backends.cpd.provider"])
    assert {"pipeline_utils.monitor.definitions", "pipeline_utils.monitor.evaluation",
            "pipeline_utils.backends.cpd.volumes"} <= modules
    assert not any(name.startswith(("pipeline_utils.cli", "pipeline_utils.deploy")) for name in modules)
    monitors = {"segmentation_metrics": config(), "generic_metrics_v2": config()}
    source = build_provider(monitors, fake_cpd.url, str(fake_cpd.ca_file))
    assert source == build_provider(monitors, fake_cpd.url, str(fake_cpd.ca_file))  # same code, same provider
    assert fake_cpd.ca_file.read_text().strip().splitlines()[1] in source.text
    assert fake_cpd.api_key not in source.text and "api_key" not in source.text
    compile(source.text, source.name, "exec")
    assert source.name.startswith("mlops-metrics-provider-")
