"""Prometheus metrics of one app, in their own registry (tests create several apps).

Names follow Prometheus conventions: a `vggsvc_` prefix, base units (seconds,
bytes), `_total` on counters.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


class Metrics:
    """Every series the service exports; the objects are plain prometheus-client metrics."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # The process's memory, CPU, open files, GC and Python version (process_*, python_*):
        # memory is one of the service's own targets. The default collectors are
        # registered on this app's registry too (one registry per app; tests build many).
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            r.register(collector)
        self.requests = Counter(
            "vggsvc_requests",
            "HTTP requests by endpoint, model and status code.",
            ["endpoint", "model", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "vggsvc_request_duration_seconds",
            "Total time to answer a request.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.decode_seconds = Histogram(
            "vggsvc_decode_duration_seconds",
            "Time to decode and resize one image.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_wait_seconds = Histogram(
            "vggsvc_queue_wait_seconds",
            "Time a request waited in the batch queue.",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inference_seconds = Histogram(
            "vggsvc_inference_duration_seconds",
            "Time of one model call (one batch).",
            ["model", "version", "precision"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "vggsvc_batch_size",
            "Images per model call, before padding.",
            ["model", "version"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.model_calls = Counter(
            "vggsvc_model_calls",
            "Model calls (batches run).",
            ["model", "version"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "vggsvc_queue_depth",
            "Images waiting in the batch queue.",
            ["model", "version"],
            registry=r,
        )
        self.in_flight = Gauge(
            "vggsvc_requests_in_flight",
            "Requests being answered now.",
            registry=r,
        )
        self.model_loaded = Gauge(
            "vggsvc_model_version_loaded",
            "1 for each model version loaded and serving.",
            ["model", "version"],
            registry=r,
        )
        self.load_failures = Counter(
            "vggsvc_model_load_failures",
            "Model versions that failed to load or validate.",
            ["model"],
            registry=r,
        )
        self.predictions = Counter(
            "vggsvc_predictions",
            "Images answered, by model and top-1 class.",
            ["model", "label"],
            registry=r,
        )
        self.confidence = Histogram(
            "vggsvc_prediction_confidence",
            "Top-1 probability of each answered image.",
            ["model"],
            buckets=CONFIDENCE_BUCKETS,
            registry=r,
        )
        # Shared bases (service.shared_base): one base pass serves every head of the batch;
        # head calls / base passes is the saving.
        self.base_passes = Counter(
            "vggsvc_base_passes",
            "Calls of a shared base (one per batch chunk), by base identity.",
            ["base"],
            registry=r,
        )
        self.base_images = Counter(
            "vggsvc_base_images",
            "Pictures through a shared base (mirror images included), by base identity.",
            ["base"],
            registry=r,
        )
        self.head_calls = Counter(
            "vggsvc_head_calls",
            "Head calls on a shared base's features, by base identity.",
            ["base"],
            registry=r,
        )
        self.base_heads = Gauge(
            "vggsvc_base_heads",
            "Model versions served on each loaded shared base.",
            ["base"],
            registry=r,
        )
        # For alerts: "not ready" and "queue near full" (depth / capacity).
        self.ready = Gauge("vggsvc_ready", "1 while /readyz answers 200, else 0.", registry=r)
        self.queue_capacity = Gauge(
            "vggsvc_queue_capacity",
            "Images a model version's batch queue holds before requests get 503.",
            registry=r,
        )
        self.gpu_memory = Gauge(
            "vggsvc_gpu_memory_bytes",
            "GPU memory held by TensorFlow (only with a GPU).",
            ["device"],
            registry=r,
        )

    def render(self, ready: bool, gpu_memory: dict[str, int] | None = None) -> bytes:
        self.ready.set(1 if ready else 0)
        for device, used in (gpu_memory or {}).items():
            self.gpu_memory.labels(device=device).set(used)
        return generate_latest(self.registry)
