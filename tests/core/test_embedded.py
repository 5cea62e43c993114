"""The embedded PostgreSQL and Redis: start, reuse, stop, keep data, explain failures."""

import psycopg
import pytest
import redis

from fintech import embedded


@pytest.fixture
def var(tmp_path):
    yield tmp_path
    embedded.redis_stop(tmp_path)
    embedded.postgres_stop(tmp_path)


def _connect(instance: embedded.PostgresInstance) -> psycopg.Connection:
    database = instance.django_database()
    return psycopg.connect(
        host=database["HOST"], port=database["PORT"], user="postgres", dbname=database["NAME"], autocommit=True
    )


def test_postgres_starts_is_reused_and_keeps_its_data_across_restarts(var):
    first = embedded.postgres_start(var)
    assert (var / "postgres" / "PG_VERSION").is_file()
    assert embedded.postgres_start(var).pid == first.pid  # reused, not a second server
    with _connect(first) as connection:
        connection.execute("CREATE TABLE kept (value text)")
        connection.execute("INSERT INTO kept VALUES ('still here')")
        extensions = {row[0] for row in connection.execute("SELECT name FROM pg_available_extensions")}
    assert "pg_trgm" not in extensions  # nothing may rely on contrib extensions

    assert embedded.postgres_stop(var) is True
    assert embedded.postgres_pid(var / "postgres") is None
    assert embedded.postgres_stop(var) is False

    restarted = embedded.postgres_start(var)
    assert restarted.pid != first.pid
    with _connect(restarted) as connection:
        assert connection.execute("SELECT value FROM kept").fetchone() == ("still here",)


def test_postgres_that_cannot_start_is_explained(var):
    data_dir = var / "postgres"
    embedded.postgres_start(var)
    embedded.postgres_stop(var)
    (data_dir / "PG_VERSION").write_text("9\n")  # a data directory of another major version
    with pytest.raises(embedded.EmbeddedServiceError) as error:
        embedded.postgres_start(var)
    message = str(error.value)
    assert f"The embedded PostgreSQL in {data_dir} could not start" in message
    assert "DATABASE_URL" in message
    assert embedded.postgres_pid(data_dir) is None


def test_redis_starts_is_reused_and_keeps_its_data_across_restarts(var):
    first = embedded.redis_start(var)
    assert embedded.redis_start(var).pid == first.pid
    client = redis.Redis.from_url(first.url)
    client.set("kept", "still here")
    client.close()

    assert embedded.redis_stop(var) is True
    assert embedded.redis_pid(var / "redis") is None

    restarted = embedded.redis_start(var)
    assert restarted.pid != first.pid
    client = redis.Redis.from_url(restarted.url)
    assert client.get("kept") == b"still here"  # append-only file replayed
    client.close()


def test_redis_that_cannot_start_is_explained(var):
    (var / "redis" / "redis.sock").mkdir(parents=True)  # the socket path is taken by a directory
    with pytest.raises(embedded.EmbeddedServiceError) as error:
        embedded.redis_start(var)
    message = str(error.value)
    assert f"The embedded Redis in {var / 'redis'} could not start" in message
    assert "REDIS_URL" in message
    assert embedded.redis_pid(var / "redis") is None


def test_long_paths_get_a_short_socket_path(tmp_path):
    deep = tmp_path / ("d" * 120)
    path = embedded._short_socket_path(deep, "redis.sock")
    assert len(str(path)) <= embedded.UNIX_SOCKET_PATH_MAX
    assert path == embedded._short_socket_path(deep, "redis.sock")  # stable for the same directory
    short = tmp_path / "short"
    assert embedded._short_socket_path(short, "redis.sock") == short / "redis.sock"
