"""An OpenTelemetry collector on loopback that keeps every span and metric it is sent, as raw bytes."""

from __future__ import annotations

import threading
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from commander.devserver import free_port


class Collector(metrics_service_pb2_grpc.MetricsServiceServicer, trace_service_pb2_grpc.TraceServiceServicer):
    """Receives OTLP/gRPC exports; ``received`` holds each request as sent on the wire."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.spans = 0
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None
        self.port = free_port()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def Export(self, request: Any, context: Any) -> Any:
        with self._lock:
            self.received.append(request.SerializeToString())
        if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
            with self._lock:
                self.spans += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
            return trace_service_pb2.ExportTraceServiceResponse()
        return metrics_service_pb2.ExportMetricsServiceResponse()

    def text(self) -> str:
        """Everything received, as text to search (strings in protobuf are stored as UTF-8 bytes)."""
        with self._lock:
            return b"\n".join(self.received).decode("latin-1")

    def __enter__(self) -> Collector:
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(self, self._server)
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        self._server.add_insecure_port(f"127.0.0.1:{self.port}")
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.stop(None)
