"""Locust load test of the served ``ner`` ensemble over gRPC and HTTP.

    make serve                                   # in one terminal (or docker compose up)
    .venv/bin/locust -f loadtest/locustfile.py   # web UI on http://localhost:8089
    .venv/bin/locust -f loadtest/locustfile.py,loadtest/step_load.py --headless   # step load

Users: ``GrpcNerUser`` and ``HttpNerUser`` (both by default; name one as an argument to run only it). Scenarios are
tags: ``--tags short`` (one sentence), ``news`` (a paragraph), ``long`` (a document over 512 tokens); without
tags the three are mixed 6:3:1. ``--texts-per-request``, ``--strategy`` and the thresholds
``--max-failure-ratio`` / ``--max-p95-ms`` (exit code 1 when broken) are options. Load only ever goes to
loopback or to the compose network's ``triton`` host.
"""

from __future__ import annotations

# gRPC must cooperate with gevent before tritonclient.grpc is imported (as in Locust's own gRPC example).
import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()

import logging  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from locust import User, events, tag, task  # noqa: E402
from locust.argument_parser import LocustArgumentParser  # noqa: E402
from locust.env import Environment  # noqa: E402

from triton_ner.client import NerClient  # noqa: E402
from triton_ner.core import names  # noqa: E402
from triton_ner_loadtest.hosts import ALLOWED_HOSTS, is_allowed_host  # noqa: E402
from triton_ner_loadtest.texts import scenario_text  # noqa: E402


@events.init_command_line_parser.add_listener
def _options(parser: LocustArgumentParser) -> None:
    parser.add_argument("--grpc-url", default=f"localhost:{names.GRPC_PORT}",
                        help="host:port of Triton's gRPC endpoint")
    parser.add_argument("--http-url", default=f"localhost:{names.HTTP_PORT}",
                        help="host:port of Triton's HTTP endpoint")
    parser.add_argument("--texts-per-request", type=int, default=1, help="texts in each request")
    parser.add_argument("--strategy", default="simple", help="aggregation_strategy of every request")
    parser.add_argument("--max-failure-ratio", type=float, default=None, help="exit 1 above this failure ratio")
    parser.add_argument("--max-p95-ms", type=float, default=None, help="exit 1 above this p95 latency (ms)")


@events.init.add_listener
def _refuse_remote_targets(environment: Environment, **_kwargs: object) -> None:
    options = environment.parsed_options
    if options is None:
        return
    for url in (options.grpc_url, options.http_url):
        if not is_allowed_host(url):
            logging.error("refusing to load %s: only loopback or the compose network's hosts (%s)", url,
                          ", ".join(sorted(ALLOWED_HOSTS)))
            sys.exit(2)


@events.quitting.add_listener
def _check_thresholds(environment: Environment, **_kwargs: object) -> None:
    options, total = environment.parsed_options, environment.stats.total
    if options is None:
        return
    broken = []
    if total.num_requests == 0:
        broken.append("no request was made")
    if options.max_failure_ratio is not None and total.fail_ratio > options.max_failure_ratio:
        broken.append(f"failure ratio {total.fail_ratio:.3f} > {options.max_failure_ratio}")
    p95 = total.get_response_time_percentile(0.95)
    if options.max_p95_ms is not None and p95 > options.max_p95_ms:
        broken.append(f"p95 {p95:.0f} ms > {options.max_p95_ms:.0f} ms")
    if broken:
        logging.error("thresholds broken: %s", "; ".join(broken))
        environment.process_exit_code = 1


class _NerUser(User):
    abstract = True
    protocol = "grpc"

    def on_start(self) -> None:
        options = self.environment.parsed_options
        assert options is not None  # Locust's command line parsed (_options)
        url = options.grpc_url if self.protocol == "grpc" else options.http_url
        # No client-side retries: the load test must see every failure the server returns.
        self.ner = NerClient(url, self.protocol, retries=0)
        self.texts_per_request = options.texts_per_request
        self.strategy = options.strategy
        self.rng = random.Random()

    def on_stop(self) -> None:
        # Without this the gRPC channel keeps the headless Locust process alive after the run.
        self.ner.close()

    def _predict(self, scenario: str) -> None:
        texts = [scenario_text(scenario, self.rng) for _ in range(self.texts_per_request)]
        started = time.perf_counter()
        exception = None
        try:
            self.ner.predict(texts, aggregation_strategy=self.strategy)
        except Exception as error:  # noqa: BLE001 - every failure is reported to Locust, none stops the user
            exception = error
        self.environment.events.request.fire(
            request_type=self.protocol, name=f"{scenario} x{self.texts_per_request}",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=sum(len(t) for t in texts), exception=exception, context={})

    @tag("short")
    @task(6)
    def short(self) -> None:
        self._predict("short")

    @tag("news")
    @task(3)
    def news(self) -> None:
        self._predict("news")

    @tag("long")
    @task(1)
    def long(self) -> None:
        self._predict("long")


class GrpcNerUser(_NerUser):
    protocol = "grpc"


class HttpNerUser(_NerUser):
    protocol = "http"
