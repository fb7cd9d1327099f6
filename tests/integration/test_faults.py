"""A 2xx means the record reaches Kafka — under broker outages, kill -9, SIGTERM and overload.

Every test here runs against its own broker behind a TCP proxy (tests/faults.py) that cuts,
stalls and restores the network between the bridge and Kafka, and most run the real
`unit21-bridge serve` process. The figures they measure are printed at the end of the run
("delivery under faults") and quoted in docs/delivery.md.
"""

from __future__ import annotations

import signal
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import orjson
import pytest
from starlette.testclient import TestClient

from bridge.contract.parsing import event_id
from bridge.delivery.topics import create_topics
from bridge.ingress.app import create_app
from bridge.settings import Settings
from tests.faults import FIGURES, BridgeProcess, Load, alert_body, kafka_event_ids
from tests.integration.conftest import FaultyKafka, broker_behind_proxy
from tests.scrape import parse_metrics, value
from tests.support import SECRET, all_topics, read_topic, signed_headers, unique_prefix, wait_until

DELIVERY_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def faulty_kafka() -> Iterator[FaultyKafka]:
    """A broker of this module's own whose every connection crosses the proxy."""
    with broker_behind_proxy() as kafka:
        yield kafka


@pytest.fixture
def faulty(faulty_kafka: FaultyKafka) -> Iterator[FaultyKafka]:
    faulty_kafka.proxy.restore()
    yield faulty_kafka
    faulty_kafka.proxy.restore()


@pytest.fixture
def topic_prefix(faulty: FaultyKafka) -> str:
    value = unique_prefix()
    create_topics({"bootstrap.servers": faulty.bootstrap}, all_topics(value), partitions=3)
    return value


def bridge_env(faulty: FaultyKafka, prefix: str, spool_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": faulty.bootstrap,
        "UNIT21_WEBHOOK_SECRETS": SECRET,
        "BRIDGE_TOPIC_PREFIX": prefix,
        "BRIDGE_SPOOL_DIR": str(spool_dir),
        "BRIDGE_DELIVERY_TIMEOUT_SECONDS": str(DELIVERY_TIMEOUT),
        "BRIDGE_LOG_LEVEL": "WARNING",  # one INFO line per request is noise at this rate
        "BRIDGE_LOG_FORMAT": "json",
        **extra,
    }


def figures(name: str, **values: object) -> None:
    FIGURES.append(f"{name}: " + ", ".join(f"{k}={v}" for k, v in values.items()))


def test_kafka_outage_under_load_loses_nothing(
    faulty: FaultyKafka, topic_prefix: str, tmp_path: Path
) -> None:
    bridge = BridgeProcess(bridge_env(faulty, topic_prefix, tmp_path / "spool"), tmp_path / "bridge.log")
    bridge.start()
    try:
        load = Load(bridge.webhook_url, concurrency=16).start()
        time.sleep(2.0)
        faulty.proxy.cut()
        time.sleep(3.5)  # longer than the delivery deadline and than Unit21's whole retry budget
        peak_depth = bridge.spool_depth()
        faulty.proxy.restore()
        restored = time.monotonic()
        bridge.wait_for_empty_spool()  # while the load goes on
        drain_seconds = time.monotonic() - restored
        time.sleep(1.0)
        run = load.stop()
        bridge.wait_for_empty_spool()
        in_kafka = kafka_event_ids(faulty.bootstrap, f"{topic_prefix}alert", run.accepted)
    finally:
        bridge.stop()

    accepted = run.accepted
    lost = accepted - set(in_kafka)
    duplicates = len(in_kafka) - len(set(in_kafka))
    figures(
        "outage 3.5 s under load",
        sent=len(run.outcomes),
        answered_200=run.count(200),
        answered_202_spooled=run.count(202),
        answered_503=run.count(503),
        other=len(run.outcomes) - run.count(200, 202, 503),
        records_in_kafka=len(in_kafka),
        lost=len(lost),
        duplicates=duplicates,
        spool_peak=peak_depth,
        drain_seconds=round(drain_seconds, 2),
    )
    assert run.count(202) > 0, "the outage spooled nothing: the test did not test anything"
    assert run.count(200, 202) == len(run.outcomes), "a request was refused while the spool had room"
    assert not lost, f"{len(lost)} acknowledged webhooks are not in Kafka"
    assert set(in_kafka) == accepted, "every record in Kafka is one a 2xx promised, and only those"
    # At-least-once: a record the broker stored just as the network was cut, whose ack was lost,
    # timed out, was spooled and is sent again. Only a request in flight at the cut can do that.
    copies = {i for i in set(in_kafka) if in_kafka.count(i) > 1}
    assert copies <= run.ids(202)
    assert duplicates <= 16, "more duplicates than requests that could be in flight at the cut"
    assert not [p for p in (tmp_path / "spool").iterdir() if p.suffix == ".db"], "spool files left behind"


def test_kill_9_with_a_full_spool_then_restart_delivers_everything(
    faulty: FaultyKafka, topic_prefix: str, tmp_path: Path
) -> None:
    env = bridge_env(faulty, topic_prefix, tmp_path / "spool")
    first = BridgeProcess(env, tmp_path / "first.log").start()
    try:
        faulty.proxy.cut()
        run = Load(first.webhook_url, concurrency=8, limit=60).start().join()
        assert run.count(202) == 60, [o.status for o in run.outcomes]
        assert first.spool_depth() == 60
        first.signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        first.stop()
    faulty.proxy.restore()
    second = BridgeProcess(env, tmp_path / "second.log")
    started = time.monotonic()
    second.start()
    try:
        second.wait_for_empty_spool()
        recovery = time.monotonic() - started
        in_kafka = kafka_event_ids(faulty.bootstrap, f"{topic_prefix}alert", run.accepted)
    finally:
        second.stop()
    lost = run.accepted - set(in_kafka)
    figures(
        "kill -9 with 60 spooled",
        spooled=run.count(202),
        records_in_kafka=len(in_kafka),
        lost=len(lost),
        restart_to_drained_seconds=round(recovery, 2),
    )
    assert not lost
    assert len(in_kafka) == 60
    assert "adopted 60 record(s)" in second.log()


def test_each_worker_has_its_own_spool_and_a_restart_adopts_them_all(
    faulty: FaultyKafka, topic_prefix: str, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    env = bridge_env(faulty, topic_prefix, spool_dir, BRIDGE_WORKERS="2")
    first = BridgeProcess(env, tmp_path / "first.log").start()
    try:
        deadline = time.monotonic() + 10
        while len(list(spool_dir.glob("*.db"))) < 2:
            assert time.monotonic() < deadline, first.log()
            time.sleep(0.1)
        faulty.proxy.cut()
        # A new connection per request, so the kernel spreads them over both workers.
        run = Load(first.webhook_url, concurrency=8, limit=80, keepalive=False).start().join()
        first.signal(signal.SIGTERM)
        first.wait(timeout=20)
    finally:
        first.stop()
    assert run.count(202) == 80
    # Each worker keeps what it could not deliver in its own file (a worker that got no
    # request had nothing to keep and removed its empty file).
    assert 1 <= len(list(spool_dir.glob("*.db"))) <= 2
    faulty.proxy.restore()
    second = BridgeProcess({**env, "BRIDGE_WORKERS": "1"}, tmp_path / "second.log").start()
    try:
        second.wait_for_empty_spool()
        in_kafka = kafka_event_ids(faulty.bootstrap, f"{topic_prefix}alert", run.accepted)
    finally:
        second.stop()
    assert not run.accepted - set(in_kafka)
    assert not list(spool_dir.iterdir())


def test_sigterm_under_load_leaves_no_2xx_without_a_record(
    faulty: FaultyKafka, topic_prefix: str, tmp_path: Path
) -> None:
    env = bridge_env(faulty, topic_prefix, tmp_path / "spool", BRIDGE_SHUTDOWN_GRACE_SECONDS="8")
    first = BridgeProcess(env, tmp_path / "first.log").start()
    try:
        load = Load(first.webhook_url, concurrency=16).start()
        time.sleep(1.5)
        faulty.proxy.cut()  # so requests are in flight, waiting on the deadline, when SIGTERM comes
        time.sleep(0.6)
        sigterm = time.monotonic()
        first.signal(signal.SIGTERM)
        code = first.wait(timeout=20)
        exit_seconds = time.monotonic() - sigterm
        time.sleep(0.3)
        run = load.stop()
    finally:
        first.stop()
    assert code in (0, -signal.SIGTERM), first.log()
    left = [p for p in (tmp_path / "spool").iterdir() if p.suffix == ".db"]
    faulty.proxy.restore()
    second = BridgeProcess(env, tmp_path / "second.log").start()
    try:
        second.wait_for_empty_spool()
        in_kafka = kafka_event_ids(faulty.bootstrap, f"{topic_prefix}alert", run.accepted)
    finally:
        second.stop()
    lost = run.accepted - set(in_kafka)
    figures(
        "SIGTERM under load during a cut",
        sent=len(run.outcomes),
        answered_2xx=len(run.accepted),
        answered_202_spooled=run.count(202),
        refused_after_exit=run.count(0),
        records_in_kafka=len(in_kafka),
        distinct_in_kafka=len(set(in_kafka)),
        lost=len(lost),
        sigterm_to_exit_seconds=round(exit_seconds, 2),
    )
    assert run.count(202) > 0 and left, "nothing was in the spool at shutdown: the test tested nothing"
    assert exit_seconds < 8 + 2
    assert not lost
    assert set(in_kafka) <= {o.event_id for o in run.outcomes}


def test_overload_answers_503_at_once_and_memory_stays_bounded(
    faulty: FaultyKafka, topic_prefix: str, tmp_path: Path
) -> None:
    env = bridge_env(
        faulty,
        topic_prefix,
        tmp_path / "spool",
        BRIDGE_SPOOL_MAX_BYTES=str(256 * 1024),
        BRIDGE_READINESS_CACHE_SECONDS="0",
    )
    bridge = BridgeProcess(env, tmp_path / "bridge.log").start()
    try:
        faulty.proxy.cut()
        fill = Load(bridge.webhook_url, concurrency=8, limit=600).start().join()
        assert fill.count(503) > 0, "the spool never filled up"
        spooled = fill.count(202)
        first_refusal = next(i for i, o in enumerate(fill.outcomes) if o.status == 503)
        assert all(o.status == 202 for o in fill.outcomes[:first_refusal]), "503 while the spool had room"
        ready = httpx2.get(f"{bridge.url}/readyz", timeout=5)
        warm = Load(bridge.webhook_url, concurrency=8, limit=300, start=10_000).start().join()
        rss_before = bridge.rss_bytes()
        burst = Load(bridge.webhook_url, concurrency=8, limit=2000, start=20_000).start().join()
        rss_after = bridge.rss_bytes()
        faulty.proxy.restore()
        bridge.wait_for_empty_spool()
        accepted = fill.accepted | warm.accepted | burst.accepted
        in_kafka = kafka_event_ids(faulty.bootstrap, f"{topic_prefix}alert", accepted)
    finally:
        bridge.stop()
    refused = [o for o in burst.outcomes if o.status == 503]
    client_p50, client_p99, client_max = percentiles([o.seconds * 1000 for o in refused])
    # The bridge's own measure (its JSON log line per request), without the load generator's CPU share.
    answers = [orjson.loads(line) for line in bridge.log_lines() if line.startswith("{")]
    server = [a["latency_ms"] for a in answers if a.get("message") == "webhook answered 503"]
    server_p50, server_p99, server_max = percentiles(server)
    figures(
        "overload (spool full at 256 KiB, Kafka cut)",
        spooled_before_full=spooled,
        burst_sent=len(burst.outcomes),
        burst_503=len(refused),
        server_ms_p50_p99_max=f"{server_p50}/{server_p99}/{server_max}",
        client_ms_p50_p99_max=f"{client_p50}/{client_p99}/{client_max}",
        rss_mib_before=round(rss_before / 2**20, 1),
        rss_mib_after=round(rss_after / 2**20, 1),
        records_in_kafka=len(in_kafka),
        lost=len(accepted - set(in_kafka)),
    )
    assert ready.status_code == 503, ready.text
    assert ready.json()["detail"]["spool"]["depth"] == spooled
    assert len(refused) == len(burst.outcomes), "with the spool full and Kafka cut every answer is 503"
    assert all(o.retry_after for o in refused)
    # The promise is an answer without waiting for Kafka's deadline; how fast is for `make bench`.
    assert server_p99 < DELIVERY_TIMEOUT * 1000 / 2, "a refusal waited on the delivery deadline"
    assert client_p99 < DELIVERY_TIMEOUT * 1000 / 2
    assert rss_after - rss_before < 20 * 2**20
    assert accepted <= set(in_kafka)


def percentiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
    return round(statistics.median(ordered), 1), round(p99, 1), round(ordered[-1], 1)


def test_same_key_keeps_its_order_across_an_outage(
    faulty: FaultyKafka, topic_prefix: str, tmp_path: Path
) -> None:
    settings = Settings.from_env(
        {},
        kafka_bootstrap_servers=faulty.bootstrap,
        webhook_secrets=(SECRET,),
        topic_prefix=topic_prefix,
        spool_dir=tmp_path,
        delivery_timeout_seconds=DELIVERY_TIMEOUT,
    )
    bodies = [alert_body(7 + 40 * i) for i in range(4)]  # one entity, so one key and one partition
    with TestClient(create_app(settings)) as client:

        def post(body: bytes) -> httpx2.Response:
            return client.post("/webhooks/unit21", content=body, headers=signed_headers(body))

        assert post(bodies[0]).status_code == 200
        faulty.proxy.cut()
        assert post(bodies[1]).status_code == 202
        faulty.proxy.restore()
        assert post(bodies[2]).status_code == 202  # queued behind the spooled record of its key
        deadline = time.monotonic() + 20
        while client.get("/readyz").json()["detail"]["spool"]["depth"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert post(bodies[3]).status_code == 200
    records = read_topic(faulty.bootstrap, f"{topic_prefix}alert", 4, timeout=20)
    assert len({r.partition for r in records}) == 1
    order = [r.headers["event_id"] for r in sorted(records, key=lambda r: r.offset)]
    assert order == [event_id(b).encode() for b in bodies]


def test_producer_queue_full_answers_503_without_waiting(
    faulty: FaultyKafka, topic_prefix: str, tmp_path: Path
) -> None:
    settings = Settings.from_env(
        {"KAFKA_QUEUE_BUFFERING_MAX_MESSAGES": "1"},
        kafka_bootstrap_servers=faulty.bootstrap,
        webhook_secrets=(SECRET,),
        topic_prefix=topic_prefix,
        spool_dir=tmp_path,
        delivery_timeout_seconds=DELIVERY_TIMEOUT,
    )
    with TestClient(create_app(settings)) as client:
        faulty.proxy.stall()  # the connection stays up, so the producer does not know it is cut off
        first: list[httpx2.Response] = []
        waiting = threading.Thread(
            target=lambda: first.append(
                client.post("/webhooks/unit21", content=alert_body(1), headers=signed_headers(alert_body(1)))
            )
        )
        waiting.start()
        wait_until(
            lambda: value(
                parse_metrics(client.get("/metrics").text), "unit21_bridge_producer_queue_messages"
            ),
            10,
            "the first webhook's record filling the one-message producer queue",
        )
        started = time.monotonic()
        second = client.post("/webhooks/unit21", content=alert_body(2), headers=signed_headers(alert_body(2)))
        elapsed = time.monotonic() - started
        waiting.join(timeout=10)
        faulty.proxy.restore()
    assert second.status_code == 503, second.text
    assert second.headers["retry-after"] and "queue_full" in second.json()["detail"]
    assert elapsed < DELIVERY_TIMEOUT / 2
    assert first and first[0].status_code == 202  # its deadline passed: spooled
