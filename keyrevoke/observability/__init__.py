"""keyrevoke's metrics and traces, on OpenTelemetry.

- ``calls``: the span and request metrics of one venue call (the OpenTelemetry API only, so the
  activities that import it stay light and record nothing until a process installs a provider);
- ``tracing``: the process's tracer provider and the Temporal client interceptors that carry one
  trace from ``incident start`` through workflows and activities to each venue call;
- ``metrics``: the process's meter provider, served on the worker's ``/metrics`` and pushed by OTLP,
  the ``Telemetry`` the batch activities report to, and the Temporal SDK's own metrics.

Nothing recorded here carries a key id, a fingerprint or a secret: labels and span attributes are
venues, operations, states and error class names only.
"""
