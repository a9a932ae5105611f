"""Every Redis client from the one setting: a plain URL, TLS, or Redis Sentinel; against a
real master, replica and three sentinels, a client finds the new master after the old one
is killed, without being made again (the whole gateway through a failover under load, and
the old master rejoining as a replica: tests/faults/test_sentinel_faults.py)."""

from __future__ import annotations

import subprocess
import time

import pytest
import redis
from redbeat.schedulers import get_redis

from tests.support.keys import KEY, SECRET
from tests.support.sentinels import sentinel_group
from tests.support.tls import certificates
from workers import redis_urls
from workers.app import create_app
from workers.local.embedded import free_port, redis_binary
from workers.redis_urls import BadRedisUrl, SentinelTarget, sentinel_target
from workers.settings import RefusedSetting, Settings


@pytest.mark.parametrize(("url", "target"), [
    ("sentinel://h1,h2:26380,[::1]:26381/mymaster",
     SentinelTarget([("h1", 26379), ("h2", 26380), ("::1", 26381)], "mymaster")),
    ("sentinel://:p%40ss@h1:1/m/3?sentinel_password=sp",
     SentinelTarget([("h1", 1)], "m", 3, None, "p@ss", {"password": "sp"})),
    ("sentinel://user:pw@h1/m/0?sentinel_username=su&sentinel_password=sp",
     SentinelTarget([("h1", 26379)], "m", 0, "user", "pw", {"password": "sp", "username": "su"})),
    ("redis://:pw@h:6379/0", None),
    ("rediss://h:6380/1", None),
])
def test_each_form_is_read(url, target):
    assert sentinel_target(url) == target


@pytest.mark.parametrize("url", [
    "http://h:6379", "sentinel://h1:26379", "sentinel://h1/m/x", "sentinel:///m",
    "sentinel://h1:port/m", "sentinel://h1/m?password=x", "sentinel://h1/m/0/extra",
])
def test_a_url_that_names_no_redis_stops_the_process_without_its_password(url):
    with pytest.raises(BadRedisUrl):
        redis_urls.check(url)
    with pytest.raises(RefusedSetting) as stopped:
        Settings(redis_url=url.replace("//", "//:hunter2-password@", 1))
    assert "GOVSMS_REDIS_URL" in str(stopped.value) and "hunter2" not in str(stopped.value)


def test_celery_and_redbeat_get_their_own_forms():
    url = "sentinel://:pw@h1,h2:26380/m/2?sentinel_password=sp"
    assert redis_urls.celery_broker(url) == (
        "sentinel://:pw@h1:26379/2;sentinel://:pw@h2:26380/2",
        {"master_name": "m", "sentinel_kwargs": {"password": "sp"}})
    beat = redis_urls.redbeat(url)
    assert beat["redbeat_redis_url"] == "redis-sentinel://h1:26379/2"
    assert beat["redbeat_redis_options"] | {"socket_timeout": None} == {
        "sentinels": [("h1", 26379), ("h2", 26380)], "service_name": "m", "db": 2,
        "password": "pw", "sentinel_kwargs": {"password": "sp"}, "socket_timeout": None}
    # kombu refuses a rediss:// broker URL that does not say how to check the certificate.
    assert redis_urls.celery_broker("rediss://h:6380/0") == (
        "rediss://h:6380/0?ssl_cert_reqs=required", {})
    assert redis_urls.celery_broker("rediss://h/0?ssl_cert_reqs=none")[0].count("ssl_") == 1
    assert redis_urls.redbeat("redis://h:6379/0") == {"redbeat_redis_url": "redis://h:6379/0",
                                                       "redbeat_redis_options": {}}


def test_a_client_through_the_sentinels_follows_a_failover(tmp_path):
    # The sentinels and the servers each want their own password: a client that did not
    # pass both along would find no master at all.
    with sentinel_group(tmp_path) as group:
        client = redis_urls.client(group.url(db=3), socket_timeout=1, socket_connect_timeout=1)
        client.set("before", "1")
        group.wait_replicated()
        old = group.master()
        old.kill()
        killed = time.monotonic()
        while True:  # the same client, never made again
            try:
                client.set("after", "2")
                break
            except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError):
                assert time.monotonic() - killed < 30, "no new master within 30 s"
                time.sleep(0.1)
        print(f"\nfailover: writes again {time.monotonic() - killed:.2f} s after kill -9")
        new = group.master()
        assert new is not old and new.role() == "master"
        assert client.get("before") == b"1"  # replicated before the kill: not lost



def test_over_tls_the_server_is_checked_and_every_client_gets_through(tmp_path):
    tls = certificates(tmp_path)
    port = free_port()
    server = subprocess.Popen([redis_binary(), "--port", "0", "--tls-port", str(port),
                               "--tls-cert-file", str(tls.cert), "--tls-key-file", str(tls.key),
                               "--tls-ca-cert-file", str(tls.ca), "--tls-auth-clients", "no",
                               "--save", "", "--bind", "127.0.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={tls.ca}"
    try:
        client = redis_urls.client(url, socket_timeout=2)
        deadline = time.monotonic() + 10
        while True:
            try:
                assert client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "no TLS Redis"
                time.sleep(0.1)
        # A server whose certificate the client cannot check is refused.
        with pytest.raises(redis.ConnectionError):
            redis_urls.client(f"rediss://127.0.0.1:{port}/0", socket_timeout=2).ping()
        # Celery's broker (told to check the certificate) and RedBeat get through too.
        app = create_app(Settings(redis_url=url, database_url="unused", bridge_secret=SECRET,
                                  secret_key=KEY))
        assert app.conf.broker_url.endswith("ssl_cert_reqs=required")
        app.send_task("govsms.dispatch", args=[[1]], queue="inbound")
        assert client.llen("inbound") == 1
        assert get_redis(app).ping()
    finally:
        server.kill()
        server.wait()
