"""Hostile clients against a real `unit21-bridge serve` on the embedded broker (issue 12).

Slow bodies, silent and slowloris connections, oversized heads and signature headers, half-sent
bodies: each is played with real sockets against the process, and the test asserts what the
client sees, what /metrics and the log say, what the process's memory does, and what reached
Kafka. Every loop is bounded in count and time. The figures are printed at the end of the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import orjson
import pytest

from bridge.ingress.signature import signature_header
from tests.faults import FIGURES, BridgeProcess, alert_body
from tests.scrape import parse_metrics, value
from tests.support import (
    EXAMPLES,
    SECRET,
    KafkaCluster,
    all_topics,
    signed_headers,
    topic_counts,
    wait_until,
)

P = "unit21_bridge_"


def figures(name: str, **values: object) -> None:
    FIGURES.append(f"{name}: " + ", ".join(f"{k}={v}" for k, v in values.items()))


def bridge_env(kafka: KafkaCluster, prefix: str, spool: Path, **extra: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "UNIT21_WEBHOOK_SECRETS": SECRET,
        "BRIDGE_TOPIC_PREFIX": prefix,
        "BRIDGE_SPOOL_DIR": str(spool),
        "BRIDGE_LOG_FORMAT": "json",
        **extra,
    }


@pytest.fixture
def serve(kafka: KafkaCluster, prefix: str, tmp_path: Path) -> Iterator[BridgeProcess]:
    """`serve` with its default limits."""
    bridge = BridgeProcess(bridge_env(kafka, prefix, tmp_path / "spool"), tmp_path / "bridge.log").start()
    try:
        yield bridge
    finally:
        bridge.stop()


def metrics(bridge: BridgeProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return parse_metrics(httpx2.get(f"{bridge.url}/metrics", timeout=5).text)


def head(port: int, content_length: int, extra: bytes = b"") -> bytes:
    return (
        b"POST /webhooks/unit21 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n%s\r\n" % (port, content_length, extra)
    )


def read_answer(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes (or `timeout`)."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    with contextlib.suppress(OSError):
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def answer_json(raw: bytes) -> dict[str, object]:
    result: dict[str, object] = orjson.loads(raw.partition(b"\r\n\r\n")[2])
    return result


def closed_by_server(sock: socket.socket) -> bool:
    """True when the server has closed the connection (EOF or reset), without waiting."""
    sock.setblocking(False)
    try:
        sock.recv(65536)  # EOF, or an answer that the close follows
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True


# -- item 1: slow bodies ------------------------------------------------------------------


def test_slow_bodies_do_not_shut_signed_webhooks_out(serve: BridgeProcess) -> None:
    flood_size, signed = 1000, 20
    rss = [serve.rss_bytes()]

    async def run() -> tuple[list[int], float, list[bytes]]:
        started = time.monotonic()
        writers: list[asyncio.StreamWriter] = []
        readers: list[asyncio.StreamReader] = []
        for _ in range(flood_size):
            reader, writer = await asyncio.open_connection("127.0.0.1", serve.port)
            writer.write(head(serve.port, 900_000))
            writers.append(writer)
            readers.append(reader)
        await asyncio.gather(*(w.drain() for w in writers))
        flood_open = time.monotonic() - started
        statuses: list[int] = []
        async with httpx2.AsyncClient(timeout=15) as client:

            async def send(n: int) -> None:
                body = alert_body(900_000 + n)
                try:
                    answer = await client.post(serve.webhook_url, content=body, headers=signed_headers(body))
                    if time.monotonic() - started <= 15:
                        statuses.append(answer.status_code)
                    else:
                        statuses.append(-1)
                except httpx2.HTTPError:
                    statuses.append(0)

            for n in range(signed):  # one after another, spread over the flood
                await send(n)
        rss.append(serve.rss_bytes())
        # The flooders themselves: a JSON 408 once the body deadline (10 s) has passed.
        answers = []
        for reader in readers[:5]:
            left = max(0.5, 14 - (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):
                answers.append(await asyncio.wait_for(reader.read(), left))
        for writer in writers:
            writer.close()
        return statuses, flood_open, answers

    statuses, flood_open, answers = asyncio.run(run())
    ok = sum(1 for s in statuses if 200 <= s < 300)
    figures(
        "slow-body flood (1000 x Content-Length 900000, no body)",
        signed_2xx=f"{ok}/{len(statuses)}",
        rss_mib_before_during=f"{rss[0] / 2**20:.1f}/{rss[-1] / 2**20:.1f}",
    )
    assert ok >= 19, f"signed webhooks during the flood: {statuses}"
    assert flood_open < 15
    assert answers and all(a.startswith(b"HTTP/1.1 408 ") for a in answers), answers
    assert answer_json(answers[0])["error"] == "body_timeout"
    assert value(metrics(serve), P + "connections_closed_total", reason="body_timeout") >= 5
    logged = [line for line in serve.log_lines() if '"door_event":"body_timeout"' in line]
    assert 1 <= len(logged) <= 3, "a flood of timeouts is logged once per window, with a count"


# -- item 2: idle, slowloris, connection cap -----------------------------------------------


def test_idle_and_slowloris_connections_are_closed(kafka: KafkaCluster, prefix: str, tmp_path: Path) -> None:
    env = bridge_env(
        kafka,
        prefix,
        tmp_path / "spool",
        BRIDGE_HEADER_TIMEOUT_SECONDS="2",
        BRIDGE_KEEPALIVE_TIMEOUT_SECONDS="1",
    )
    bridge = BridgeProcess(env, tmp_path / "bridge.log").start()
    try:
        silent = [socket.create_connection(("127.0.0.1", bridge.port)) for _ in range(50)]
        slow = [socket.create_connection(("127.0.0.1", bridge.port)) for _ in range(50)]
        trickle = head(bridge.port, 2)
        started = time.monotonic()
        sent = 0
        # One byte a connection every 0.25 s: never idle for 1 s, never a complete head.
        while time.monotonic() - started < 4 and sent < len(trickle) - 2:
            for sock in slow:
                with contextlib.suppress(OSError):
                    sock.send(trickle[sent : sent + 1])
            sent += 1
            time.sleep(0.25)
        open_silent = sum(1 for s in silent if not closed_by_server(s))
        open_slow = sum(1 for s in slow if not closed_by_server(s))
        # Answered 413 before its body, then the body trickles on: not a way to stay forever.
        early = socket.create_connection(("127.0.0.1", bridge.port))
        early.sendall(head(bridge.port, 10**12))
        early_answer = early.recv(65536)
        started = time.monotonic()
        while time.monotonic() - started < 4:
            try:
                early.send(b"x")
            except OSError:
                break
            time.sleep(0.25)
        early_open_after = time.monotonic() - started
        # A kept-alive connection that answered a request is closed once idle.
        body = (EXAMPLES / "alert_created.json").read_bytes()
        keep = socket.create_connection(("127.0.0.1", bridge.port))
        keep.sendall(
            head(
                bridge.port,
                len(body),
                f"Unit21-Signature: {signed_headers(body)['Unit21-Signature']}\r\n".encode(),
            )
            + body
        )
        first = keep.recv(65536)
        # Idle timeout 1 s; the default (5 s) would miss this 4 s deadline.
        keep_closed = wait_until(lambda: closed_by_server(keep), 4, "the idle kept-alive connection closed")
        samples = metrics(bridge)
    finally:
        bridge.stop()
        for sock in [*silent, *slow, keep, early]:
            sock.close()
    figures(
        "idle and slowloris (header timeout 2 s, idle 1 s)",
        silent_open_after_4s=f"{open_silent}/50",
        slowloris_open_after_4s=f"{open_slow}/50",
    )
    assert first.startswith(b"HTTP/1.1 200 ")
    assert open_silent == 0 and open_slow == 0
    assert early_answer.startswith(b"HTTP/1.1 413 ")
    assert early_open_after < 3.5, "a trickled body after an early answer kept the connection"
    assert keep_closed
    assert value(samples, P + "connections_closed_total", reason="idle_timeout") >= 51
    assert value(samples, P + "connections_closed_total", reason="header_timeout") >= 50
    assert value(samples, P + "connections_open") == 1  # the scrape's own


def test_connections_beyond_the_cap_are_answered_503_and_logged_once(
    kafka: KafkaCluster, prefix: str, tmp_path: Path
) -> None:
    env = bridge_env(kafka, prefix, tmp_path / "spool", BRIDGE_MAX_CONNECTIONS="40")
    bridge = BridgeProcess(env, tmp_path / "bridge.log").start()
    try:
        held = [socket.create_connection(("127.0.0.1", bridge.port)) for _ in range(40)]
        extra = [socket.create_connection(("127.0.0.1", bridge.port)) for _ in range(15)]
        answers = [read_answer(s, 3) for s in extra]
        for sock in held:
            sock.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx2.HTTPError):
                samples = metrics(bridge)
                if value(samples, P + "connections_open") <= 1:
                    break
            time.sleep(0.1)
        body = alert_body(7)
        after = httpx2.post(bridge.webhook_url, content=body, headers=signed_headers(body), timeout=10)
        lines = [orjson.loads(line) for line in bridge.log_lines() if line.startswith("{")]
    finally:
        bridge.stop()
    assert all(a.startswith(b"HTTP/1.1 503 ") for a in answers), answers
    assert answer_json(answers[0])["error"] == "connection_limit"
    # 15, or 16 when the readiness probe's connection had not been seen closed yet.
    assert value(samples, P + "connections_closed_total", reason="connection_limit") in (15, 16)
    # The first refusal of the window; the rest are counted in one line ("suppressed") at its end.
    limit_lines = [e for e in lines if e.get("door_event") == "connection_limit" and "suppressed" not in e]
    assert len(limit_lines) == 1 and "BRIDGE_MAX_CONNECTIONS" in limit_lines[0]["message"]
    assert after.status_code == 200


def test_serve_refuses_a_connection_cap_above_the_open_file_limit(tmp_path: Path) -> None:
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard open-file limit to exceed")
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "UNIT21_WEBHOOK_SECRETS": SECRET,
        "BRIDGE_SPOOL_DIR": str(tmp_path / "spool"),
        "BRIDGE_MAX_CONNECTIONS": str(hard),
        "BRIDGE_MAX_HEADER_BYTES": "1024",
        "BRIDGE_MEMORY_BUDGET_BYTES": str(64 * 2**30),
    }
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert "BRIDGE_MAX_CONNECTIONS" in done.stderr and "open-file limit" in done.stderr


# -- items 3, 4, 6: heads and signature headers --------------------------------------------


def test_signature_headers_beyond_the_caps_get_401_malformed_header(serve: BridgeProcess) -> None:
    body = alert_body(3)
    now = int(time.time())
    good = signature_header(SECRET, now, body)
    cases = {
        "entries": good + ",s1=00" * 320,  # under 2,048 characters, over 16 entries
        "length": good + ",x=" + "0" * 5000,
        "t_overflow": "t=" + "9" * 400 + ",s0=00",
        "t_5000_digits": "t=" + "1" * 5000 + ",s0=00",
    }
    answers = {}
    for name, header in cases.items():
        answer = httpx2.post(
            serve.webhook_url,
            content=body,
            headers={"Content-Type": "application/json", "Unit21-Signature": header},
            timeout=10,
        )
        answers[name] = (answer.status_code, answer.headers.get("content-type"), answer.json())
    assert len(cases["entries"]) < 2048
    for name, (status, content_type, payload) in answers.items():
        assert status == 401, (name, payload)
        assert content_type == "application/json"
        assert payload["reason"] == "malformed_header", (name, payload)


def test_a_40_mib_head_is_refused_with_431_and_costs_no_memory(serve: BridgeProcess) -> None:
    rss_before = serve.rss_bytes()
    sock = socket.create_connection(("127.0.0.1", serve.port))
    sock.sendall(b"POST /webhooks/unit21 HTTP/1.1\r\nHost: x\r\nX-Big: ")
    sent = 0
    piece = b"a" * 65536
    with contextlib.suppress(OSError):
        while sent < 40 * 2**20:
            sock.sendall(piece)
            sent += len(piece)
    raw = read_answer(sock, 5)
    rss_peak = serve.rss_bytes()
    sock.close()
    many = socket.create_connection(("127.0.0.1", serve.port))
    many.sendall(head(serve.port, 2, b"".join(b"X-H%d: v\r\n" % i for i in range(101))) + b"{}")
    many_raw = read_answer(many, 5)
    many.close()
    # A head just under the cap is fine: a signed webhook with 60 KB of ordinary headers.
    body = alert_body(4)
    headers = {**signed_headers(body), **{f"X-Pad-{i}": "p" * 1950 for i in range(30)}}
    under = httpx2.post(serve.webhook_url, content=body, headers=headers, timeout=10)
    samples = metrics(serve)
    growth = (rss_peak - rss_before) / 2**20
    figures("40 MiB header", sent_mib=round(sent / 2**20, 2), rss_growth_mib=round(growth, 1))
    assert raw.startswith(b"HTTP/1.1 431 "), raw[:200]
    assert answer_json(raw)["error"] == "header_too_large"
    assert many_raw.startswith(b"HTTP/1.1 431 ")
    assert growth < 30
    assert value(samples, P + "connections_closed_total", reason="header_too_large") == 2
    assert under.status_code == 200, under.text


# -- item 5: memory bound ------------------------------------------------------------------


def test_held_bodies_stay_under_the_computed_worst_case(
    kafka: KafkaCluster, prefix: str, tmp_path: Path
) -> None:
    from bridge.settings import Settings

    limits = {
        "BRIDGE_MAX_CONCURRENCY": "4",
        "BRIDGE_MAX_BODY_BYTES": str(8 * 2**20),
        "BRIDGE_MAX_CONNECTIONS": "100",
        "BRIDGE_BODY_TIMEOUT_SECONDS": "30",
    }
    worst = Settings.from_env(limits).worst_case_memory_bytes()
    bridge = BridgeProcess(
        bridge_env(kafka, prefix, tmp_path / "spool", **limits), tmp_path / "b.log"
    ).start()
    socks: list[socket.socket] = []
    try:
        rss_idle = bridge.rss_bytes()
        size = 8 * 2**20
        for _ in range(12):  # three times the concurrency, each one byte short of a full body
            sock = socket.create_connection(("127.0.0.1", bridge.port))
            sock.settimeout(10)
            with contextlib.suppress(OSError):
                sock.sendall(head(bridge.port, size) + b"x" * (size - 1))
            socks.append(sock)
        rss_held = 0
        for _ in range(20):  # the peak over 2 s of held bodies, not one reading that may come early
            rss_held = max(rss_held, bridge.rss_bytes())
            time.sleep(0.1)
        refused = [read_answer(s, 0.5) for s in socks]
        lines = bridge.log()
    finally:
        bridge.stop()
        for sock in socks:
            sock.close()
    overloaded = sum(1 for r in refused if r.startswith(b"HTTP/1.1 503 "))
    figures(
        "held bodies (concurrency 4, 8 MiB bodies, 12 held)",
        rss_idle_mib=round(rss_idle / 2**20, 1),
        rss_held_mib=round(rss_held / 2**20, 1),
        worst_case_mib=round(worst / 2**20, 1),
        refused_503=overloaded,
    )
    assert "worst-case memory per worker" in lines
    assert rss_held < worst
    assert overloaded >= 12 - 4 - 1


def test_serve_refuses_to_start_beyond_its_memory_budget(tmp_path: Path) -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "UNIT21_WEBHOOK_SECRETS": SECRET,
        "BRIDGE_SPOOL_DIR": str(tmp_path / "spool"),
        "BRIDGE_MAX_CONCURRENCY": "1000",
    }
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    for name in ("BRIDGE_MEMORY_BUDGET_BYTES", "BRIDGE_MAX_CONCURRENCY", "BRIDGE_MAX_BODY_BYTES"):
        assert name in done.stderr, done.stderr


# -- items 8, 9 ----------------------------------------------------------------------------


def test_huge_actions_leave_metrics_and_log_lines_small(serve: BridgeProcess) -> None:
    statuses = []
    for n in range(3):
        doc = orjson.loads(alert_body(100 + n))
        doc["change"] = f"{n}" + "C" * 300_000
        body = orjson.dumps(doc)
        statuses.append(
            httpx2.post(serve.webhook_url, content=body, headers=signed_headers(body), timeout=10)
        )
    text = httpx2.get(f"{serve.url}/metrics", timeout=5).text
    lines = serve.log_lines()
    assert [s.status_code for s in statuses] == [200] * 3, [s.text[:200] for s in statuses]
    assert len(text) < 32_000
    assert 'action="other"' in text
    assert max(len(line) for line in lines) < 4096


def test_a_body_cut_short_by_the_client_is_not_published(
    serve: BridgeProcess, kafka: KafkaCluster, prefix: str
) -> None:
    partial = b'{"object_type":"RULE"}'
    sock = socket.create_connection(("127.0.0.1", serve.port))
    sock.sendall(
        head(
            serve.port,
            500,
            f"Unit21-Signature: {signature_header(SECRET, int(time.time()), partial)}\r\n".encode(),
        )
        + partial
    )
    sock.shutdown(socket.SHUT_WR)
    read_answer(sock, 3)
    sock.close()
    body = alert_body(5)
    marker = httpx2.post(serve.webhook_url, content=body, headers=signed_headers(body), timeout=10)
    counts = topic_counts(kafka.bootstrap_servers, all_topics(prefix))
    assert marker.status_code == 200
    assert sum(counts.values()) == 1, counts
    assert any('"door_event":"incomplete_body"' in line for line in serve.log_lines())
