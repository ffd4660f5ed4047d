"""A real Prometheus scrapes a worker through an incident; every query of the dashboard and alerts works.

Debian's ``prometheus`` binary runs on loopback, on a free port with its own storage, and scrapes the
worker's /metrics every second while an incident runs on the dev server. Then, through Prometheus's
HTTP API: each expression of infra/grafana/keyrevoke-dashboard.json returns data, the completion ratio
is 1 for every venue, infra/prometheus/alerts.yml loads and each rule evaluates, and each series
selector in a rule has data (the rules themselves stay empty in a healthy run, as they should).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from temporalio.client import Client

from commander.devserver import free_port
from commander.incidents import start_incident
from keyrevoke.states import FINAL_STATES, HANDLED, KeyState
from tests.harness import stage
from tests.infra_tools import executable
from workers.runner import CONTROL, run_workers
from workflows.incident import incident_workflow_id

REPO = Path(__file__).resolve().parent.parent
DASHBOARD = REPO / "infra" / "grafana" / "keyrevoke-dashboard.json"
ALERTS = REPO / "infra" / "prometheus" / "alerts.yml"
JOB = "keyrevoke-worker"
WAIT_SECONDS = 40.0

# The metric names in a PromQL expression, with their label matchers if any.
SELECTOR = re.compile(r"\b((?:keyrevoke|temporal)_[a-z0-9_]+|up)\b(\{[^}]*\})?")
LABEL_VALUES = re.compile(r"^label_values\((.+),\s*(\w+)\)$")


def _prometheus_binary() -> str:
    return executable("prometheus")


class PrometheusApi:
    """The few calls of Prometheus's HTTP API the test makes."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query; fails the test on a PromQL error (Prometheus answers 400 with the reason)."""
        async with self.session.get(f"{self.base}/api/v1/query", params={"query": expr}) as response:
            body = await response.json()
        assert body["status"] == "success", f"{expr}\n-> {body.get('errorType')}: {body.get('error')}"
        assert body["data"]["resultType"] == "vector", expr
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def rules(self) -> list[dict[str, Any]]:
        async with self.session.get(f"{self.base}/api/v1/rules") as response:
            body = await response.json()
        assert body["status"] == "success", body
        return [rule for group in body["data"]["groups"] for rule in group["rules"]]

    async def targets(self) -> list[dict[str, Any]]:
        """Each scrape target's health, last error and scrape duration: why series may be missing."""
        async with self.session.get(f"{self.base}/api/v1/targets") as response:
            body = await response.json()
        keep = ("scrapeUrl", "health", "lastError", "lastScrapeDuration")
        return [{name: target.get(name) for name in keep} for target in body["data"]["activeTargets"]]

    async def until(self, expr: str, check: Any) -> list[dict[str, Any]]:
        """Query ``expr`` until ``check(result)`` holds (for ``WAIT_SECONDS`` at most); returns that result."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            result = await self.query(expr)
            if check(result):
                return result
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{expr}\nnever satisfied the check; last result {result}\nscrape targets: {await self.targets()}"
                )
            await asyncio.sleep(0.5)


@contextlib.asynccontextmanager
async def prometheus(tmp: Path, worker_port: int) -> AsyncIterator[PrometheusApi]:
    """Prometheus on a free loopback port, with its own storage, scraping the worker every second."""
    binary = _prometheus_binary()
    port = free_port()
    config = tmp / "prometheus.yml"
    # JSON is YAML: the same settings as infra/prometheus/prometheus.yml, but faster and on our ports.
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(ALERTS)],
                "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"]}]}],
            }
        )
    )
    log = (tmp / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, (tmp / "prometheus.log").read_text()
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{base}/-/ready") as response:
                        if response.status == 200:
                            break
                assert time.monotonic() < deadline, "prometheus did not become ready"
                await asyncio.sleep(0.2)
            yield PrometheusApi(session, base)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def dashboard_expressions(incident: str) -> list[tuple[str, str]]:
    """Every PromQL expression of the dashboard with where it is, its variables set as a person would."""
    dashboard = json.loads(DASHBOARD.read_text())
    found: list[tuple[str, str]] = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = LABEL_VALUES.match(variable["query"]["query"])
            assert match, variable["query"]
            found.append((f"variable {variable['name']}", match.group(1)))  # the series that fill it
    for panel in dashboard["panels"]:
        found += [(panel["title"], target["expr"]) for target in panel.get("targets", [])]
    # The incident id has no regex metacharacters, so it stands for itself in `incident=~"$incident"`.
    values = {"$__rate_interval": "1m", "$incident": incident, "$venue": ".*"}
    substituted = []
    for where, expr in found:
        for name, value in values.items():
            expr = expr.replace(name, value)
        # "$1" is label_replace's capture group, not a dashboard variable.
        assert "$" not in expr.replace('"$1"', ""), f"{where}: unknown dashboard variable in {expr}"
        substituted.append((where, expr))
    return substituted


def selectors(expr: str) -> list[str]:
    return [name + (matchers or "") for name, matchers in SELECTOR.findall(expr)]


async def test_prometheus_scrapes_a_worker_and_every_dashboard_and_alert_query_works(
    dev_client: Client, tmp_path: Path, queue_prefix: str
) -> None:
    _prometheus_binary()
    incident = "prom-1"
    async with stage(tmp_path, 30, queue_prefix) as st:
        worker_port = free_port()
        settings = st.settings.model_copy(update={"worker_http_port": worker_port})
        venues = sorted({row.venue for row in st.rows})
        stop, ready = asyncio.Event(), asyncio.Event()
        workers = asyncio.create_task(run_workers(dev_client, settings, [CONTROL, *venues], stop, st.ledger, ready))
        try:
            await asyncio.wait_for(ready.wait(), 30)
            async with prometheus(tmp_path, worker_port) as api:
                # Scraped once before the incident, so its counters' first increase shows.
                await api.until(f'up{{job="{JOB}"}} == 1', lambda result: len(result) == 1)
                await start_incident(dev_client, st.ledger, settings, incident, [], [])
                await asyncio.wait_for(dev_client.get_workflow_handle(incident_workflow_id(incident)).result(), 60)

                expressions = dashboard_expressions(incident)
                completion = next(expr for where, expr in expressions if where == "Handled per venue")
                await api.until(
                    completion,
                    lambda result: (
                        {r["metric"]["venue"] for r in result} == set(venues)
                        and all(float(r["value"][1]) == 1.0 for r in result)
                    ),
                )
                # The SDK's metrics of the last activities reach Prometheus a drain and a scrape after
                # the incident ends (a second each), and a rate needs two samples: hence `until`.
                for _, expr in expressions:
                    await api.until(expr, bool)
                # Every worker's pollers, not one worker's: "zero or absent means no worker serves it".
                pollers = next(expr for _, expr in expressions if "temporal_num_pollers" in expr)
                queues = {settings.control_queue, *(settings.venue_queue(venue) for venue in venues)}
                await api.until(pollers, lambda result: queues <= {r["metric"]["task_queue"] for r in result})

                alert_names = re.findall(r"^\s*- alert: (\w+)$", ALERTS.read_text(), re.MULTILINE)
                rules: list[dict[str, Any]] = []
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    rules = await api.rules()
                    if rules and all(rule["health"] == "ok" for rule in rules):
                        break
                    await asyncio.sleep(0.5)
                assert sorted(rule["name"] for rule in rules) == sorted(alert_names)
                for rule in rules:
                    assert rule["health"] == "ok", rule
                    await api.query(rule["query"])  # valid PromQL; empty while nothing is wrong
                    inner = selectors(rule["query"])
                    assert inner, rule["query"]
                    for selector in inner:
                        assert await api.query(selector), f"alert {rule['name']}: no series for {selector}"
                firing = [rule["name"] for rule in rules if rule.get("alerts")]
                assert not firing, f"alerts fire in a healthy run: {firing}"

                async with api.session.get(f"http://127.0.0.1:{worker_port}/metrics") as response:
                    exposition = await response.text()
                leaked = [s for s in st.secrets() if s in exposition]
                assert not leaked, "a secret is in the worker's metrics"
        finally:
            stop.set()
            await asyncio.wait_for(workers, 60)


# --------------------------------------------------------------------------------------------------
# The danger the dashboard and alerts must show, on series made for it, evaluated by promtool


def _dashboard_expr(title: str) -> str:
    """A panel's expression with every incident and venue selected."""
    (expr,) = [e for where, e in dashboard_expressions(".*") if where == title]
    return expr.replace('venue=~".*"', 'venue=~".+"').replace('incident=~".*"', 'incident=~".+"')


def _alert_expr(name: str) -> str:
    import yaml

    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    (rule,) = [rule for rule in rules if rule.get("alert") == name]
    return str(rule["expr"]).strip()


def _keys(venue: str, state: str, count: int) -> dict[str, str]:
    return {"series": f'keyrevoke_keys{{incident="i1", venue="{venue}", state="{state}"}}', "values": f"{count}x20"}


def test_dashboards_and_alerts_show_every_key_that_may_still_work_and_each_stuck_venue(tmp_path: Path) -> None:
    """Binance stuck (keys revoking, no transition), OKX with keys and no worker on its queue, Bybit moving,
    Gate finished with escalated and unconfirmed keys: the panels count those as keys that may still work,
    the stall alert names binance and okx (not bybit), the no-worker alert names okx alone."""
    promtool = executable("promtool")
    series = [
        _keys("binance", "revoking", 4),
        {"series": 'keyrevoke_key_transitions_total{venue="binance", state="revoked"}', "values": "10x20"},
        _keys("bybit", "revoking", 3),
        {"series": 'keyrevoke_key_transitions_total{venue="bybit", state="confirmed"}', "values": "0+1x20"},
        _keys("okx", "pending", 5),
        _keys("gate", "confirmed", 5),
        _keys("gate", "closed", 1),
        _keys("gate", "escalated", 1),
        _keys("gate", "unconfirmed", 1),
        {"series": 'keyrevoke_key_transitions_total{venue="gate", state="confirmed"}', "values": "0+1x20"},
    ]
    for queue in ("keyrevoke-control", "keyrevoke-venue-binance", "keyrevoke-venue-bybit", "keyrevoke-venue-gate"):
        series.append(
            {"series": f'temporal_num_pollers{{task_queue="{queue}", poller_type="activity_task"}}', "values": "2x20"}
        )

    def sample(labels: str, value: float) -> dict[str, Any]:
        return {"labels": labels, "value": value}

    def in_venue(venue: str) -> str:
        return f'{{incident="i1", venue="{venue}"}}'

    checks = [
        (_dashboard_expr("Keys that may still work"), [sample("{}", 4 + 3 + 5 + 2)]),
        (
            _dashboard_expr("May still work per venue"),
            [sample(in_venue(v), n) for v, n in (("binance", 4), ("bybit", 3), ("gate", 2), ("okx", 5))],
        ),
        (
            _dashboard_expr("Handled per venue"),
            [sample(f'{{venue="{v}"}}', n) for v, n in (("binance", 0), ("bybit", 0), ("gate", 0.75), ("okx", 0))],
        ),
        (
            _dashboard_expr("Work finished per venue"),
            [sample(f'{{venue="{v}"}}', n) for v, n in (("binance", 0), ("bybit", 0), ("gate", 1), ("okx", 0))],
        ),
        (_dashboard_expr("Need a human"), [sample("{}", 2)]),
        (_alert_expr("KeyrevokeVenueStalled"), [sample(in_venue("binance"), 4), sample(in_venue("okx"), 5)]),
        (_alert_expr("KeyrevokeVenueQueueWithoutWorker"), [sample(in_venue("okx"), 5)]),
        (_alert_expr("KeyrevokeKeysMayStillWork"), [sample(in_venue("gate"), 2)]),
    ]
    tests = {
        "rule_files": [str(ALERTS)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {"expr": expr, "eval_time": "10m", "exp_samples": expected} for expr, expected in checks
                ],
            }
        ],
    }
    path = tmp_path / "danger.test.yml"
    path.write_text(json.dumps(tests))  # JSON is YAML
    result = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_state_sets_of_the_dashboard_are_keyrevokes_own() -> None:
    """Handled is confirmed and closed; finished is every final state; each state named exists."""
    known = {state.value for state in KeyState}
    texts = DASHBOARD.read_text() + ALERTS.read_text()
    for match in re.findall(r'state[!=]~\\?"([a-z|]+)\\?"', texts):
        assert set(match.split("|")) <= known, f"unknown state in {match}"
    finished = {s.value for s in FINAL_STATES}
    for title in ("Keys that may still work", "May still work per venue"):
        (not_handled,) = re.findall(r'state!~"([a-z|]+)"', _dashboard_expr(title))
        assert set(not_handled.split("|")) == {s.value for s in HANDLED}, title
    (finished_regex,) = re.findall(r'state=~"([a-z|]+)"', _dashboard_expr("Work finished per venue"))
    assert set(finished_regex.split("|")) == finished
    (handled_regex,) = re.findall(r'state=~"([a-z|]+)"', _dashboard_expr("Handled per venue"))
    assert set(handled_regex.split("|")) == {s.value for s in HANDLED}
