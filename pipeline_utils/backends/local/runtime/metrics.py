"""Prometheus text-format metrics for the runtime (counters, gauges, one latency histogram)."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Request counters and latency histograms per deployment; gauges are read when rendering."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.timeouts: dict[str, int] = defaultdict(int)
        self.restarts: dict[str, int] = defaultdict(int)
        self.bucket_counts: dict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.endpoint_requests: dict[tuple[str, str, int, bool], int] = defaultdict(int)
        self.payload_log: Any = None  # the daemon's PayloadLog: written/dropped/failed/lost counters per deployment

    def observe(self, deployment: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        self.requests[(deployment, status)] += 1
        self.bucket_counts[deployment][bisect.bisect_left(BUCKETS, seconds)] += 1
        self.latency_sum[deployment] += seconds

    def observe_endpoint(self, endpoint: str, deployment: str, status: int, mirrored: bool = False) -> None:
        """Count one request an endpoint routed (or mirrored) to a deployment."""
        self.endpoint_requests[(endpoint, deployment, status, mirrored)] += 1

    def forget_endpoint(self, endpoint: str) -> None:
        """Drop the series of a deleted endpoint."""
        for key in [k for k in self.endpoint_requests if k[0] == endpoint]:
            del self.endpoint_requests[key]

    def forget(self, deployment: str) -> None:
        """Drop the series of a deleted deployment."""
        for key in [k for k in self.requests if k[0] == deployment]:
            del self.requests[key]
        for series in (self.timeouts, self.restarts, self.bucket_counts, self.latency_sum):
            series.pop(deployment, None)

    def render(self, gauges: Callable[[], Iterable[tuple[str, int, int, int]]]) -> str:
        """The exposition text; ``gauges`` yields (deployment, kernels running, kernels ready, queue depth)."""
        lines = [
            "# HELP mlops_runtime_requests_total Inference requests answered, by deployment and HTTP status.",
            "# TYPE mlops_runtime_requests_total counter",
        ]
        lines += [
            f'mlops_runtime_requests_total{{deployment="{d}",code="{c}"}} {n}'
            for (d, c), n in sorted(self.requests.items())
        ]
        lines += [
            "# HELP mlops_runtime_endpoint_requests_total Requests an endpoint routed, by deployment, status and"
            " whether it was a mirrored copy.",
            "# TYPE mlops_runtime_endpoint_requests_total counter",
        ]
        lines += [
            f'mlops_runtime_endpoint_requests_total{{endpoint="{e}",deployment="{d}",code="{c}",'
            f'mirrored="{str(m).lower()}"}} {n}'
            for (e, d, c, m), n in sorted(self.endpoint_requests.items())
        ]
        lines += [
            "# HELP mlops_runtime_request_duration_seconds Inference request latency.",
            "# TYPE mlops_runtime_request_duration_seconds histogram",
        ]
        for deployment, counts in sorted(self.bucket_counts.items()):
            cumulative = 0
            for bound, count in zip((*BUCKETS, "+Inf"), counts, strict=True):
                cumulative += count
                lines.append(
                    f'mlops_runtime_request_duration_seconds_bucket{{deployment="{deployment}",'
                    f'le="{bound}"}} {cumulative}'
                )
            lines.append(
                f'mlops_runtime_request_duration_seconds_sum{{deployment="{deployment}"}} '
                f"{self.latency_sum[deployment]:.6f}"
            )
            lines.append(f'mlops_runtime_request_duration_seconds_count{{deployment="{deployment}"}} {cumulative}')
        lines += [
            "# HELP mlops_runtime_task_timeouts_total Tasks past task_execution_timeout (answered 504).",
            "# TYPE mlops_runtime_task_timeouts_total counter",
        ]
        lines += [
            f'mlops_runtime_task_timeouts_total{{deployment="{d}"}} {n}' for d, n in sorted(self.timeouts.items())
        ]
        lines += [
            "# HELP mlops_runtime_kernel_restarts_total Kernels replaced after a crash or timeout.",
            "# TYPE mlops_runtime_kernel_restarts_total counter",
        ]
        lines += [
            f'mlops_runtime_kernel_restarts_total{{deployment="{d}"}} {n}' for d, n in sorted(self.restarts.items())
        ]
        if self.payload_log is not None:
            counters = self.payload_log.counters()
            for metric, text in (
                ("written", "Payload log records written."),
                ("dropped", "Payload log records dropped (writer queue full)."),
                ("failed", "Payload log records lost to write errors."),
                ("lost", "Payload log records lost when the daemon or its writer process died before writing them."),
            ):
                lines += [
                    f"# HELP mlops_runtime_payload_log_{metric}_total {text}",
                    f"# TYPE mlops_runtime_payload_log_{metric}_total counter",
                ]
                lines += [
                    f'mlops_runtime_payload_log_{metric}_total{{deployment="{d}"}} {values[metric]}'
                    for d, values in counters.items()
                ]
            lines += [
                "# HELP mlops_runtime_payload_log_queued Payload log records waiting for the writer.",
                "# TYPE mlops_runtime_payload_log_queued gauge",
                f"mlops_runtime_payload_log_queued {self.payload_log.queued()}",
            ]
        rows = list(gauges())
        for metric, index, text in (
            ("kernels", 1, "Kernel processes alive."),
            ("kernels_ready", 2, "Kernels ready to take tasks."),
            ("queue_depth", 3, "Requests waiting for a kernel."),
        ):
            lines += [f"# HELP mlops_runtime_{metric} {text}", f"# TYPE mlops_runtime_{metric} gauge"]
            lines += [f'mlops_runtime_{metric}{{deployment="{row[0]}"}} {row[index]}' for row in rows]
        return "\n".join(lines) + "\n"
