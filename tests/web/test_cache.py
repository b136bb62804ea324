"""With Redis unreachable the cache answers as an empty one, and the pages still answer."""

import socket

import pytest

from portal.web.cache import ResilientRedisCache


def _nothing_listens() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


def test_an_unreachable_redis_is_an_empty_cache_that_keeps_nothing():
    cache = ResilientRedisCache(_nothing_listens(), {"OPTIONS": {"socket_connect_timeout": 1}})
    cache.set("k", "v")
    assert cache.get("k") is None
    assert cache.get("k", "fallback") == "fallback"
    assert cache.get_many(["k", "j"]) == {}
    assert cache.add("lock", "1") is False  # a lock is not granted
    assert cache.set_many({"a": 1}) == ["a"]
    assert cache.get_or_set("computed", lambda: 42) == 42
    assert cache.delete("k") is False
    assert cache.has_key("k") is False
    with pytest.raises(ValueError):
        cache.incr("counter")


def test_pages_answer_while_the_cache_is_unreachable(team, client_for, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "portal.web.cache.ResilientRedisCache",
            "LOCATION": _nothing_listens(),
            "OPTIONS": {"socket_connect_timeout": 1},
        }
    }
    client = client_for(team.owner.user)
    for path in ("/o/acme/", "/o/acme/instances/", "/o/acme/billing/"):
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)


def test_threads_sharing_the_cache_each_read_back_what_they_wrote(settings):
    from concurrent.futures import ThreadPoolExecutor

    cache = ResilientRedisCache(settings.CACHES["default"]["LOCATION"], {"KEY_PREFIX": "threads"})

    def write_and_read(n: int) -> list[int]:
        seen = []
        for i in range(50):
            cache.set(f"t{n}-{i}", n * 1000 + i)
            seen.append(cache.get(f"t{n}-{i}"))
        return seen

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(write_and_read, range(8)))
    assert results == [[n * 1000 + i for i in range(50)] for n in range(8)]
    cache.delete_many([f"t{n}-{i}" for n in range(8) for i in range(50)])
