"""The embedded PostgreSQL and Redis: start, reuse, stop, keep data, explain failures."""

import concurrent.futures
import os
import signal
import subprocess

import psutil
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
    assert first.started
    assert (var / "postgres" / "PG_VERSION").is_file()
    reused = embedded.postgres_start(var)
    assert (reused.pid, reused.started) == (first.pid, False)  # reused, not a second server
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


def test_a_stale_pid_file_naming_another_process_is_ignored(var):
    embedded.postgres_start(var)
    embedded.postgres_stop(var)
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        data_dir = var / "postgres"
        # what a crashed server leaves behind, naming a pid that now belongs to another program
        lines = [bystander.pid, data_dir, 1700000000, 5432, data_dir, "", "0 0", "ready"]
        (data_dir / "postmaster.pid").write_text("\n".join(map(str, lines)) + "\n")
        assert embedded.postgres_pid(var / "postgres") is None
        assert embedded.postgres_stop(var) is False
        assert bystander.poll() is None  # never signalled
        started = embedded.postgres_start(var)  # and the server still starts
        assert started.pid != bystander.pid and started.started
    finally:
        bystander.kill()
        bystander.wait()


def test_a_running_redis_that_does_not_answer_is_never_doubled(var, monkeypatch):
    first = embedded.redis_start(var)
    monkeypatch.setattr(embedded, "START_TIMEOUT_SECONDS", 2)
    os.kill(first.pid, signal.SIGSTOP)  # alive, but silent (as while it replays a large file)
    try:
        with pytest.raises(embedded.EmbeddedServiceError, match="runs but does not answer"):
            embedded.redis_start(var)
        servers = [
            p for p in psutil.process_iter(["cmdline"]) if str(first.socket_path) in " ".join(p.info["cmdline"] or [])
        ]
        assert [server.pid for server in servers] == [first.pid]
    finally:
        os.kill(first.pid, signal.SIGCONT)


def test_concurrent_starts_share_one_server(var):
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        redis_servers = list(pool.map(lambda _: embedded.redis_start(var), range(4)))
        postgres_servers = list(pool.map(lambda _: embedded.postgres_start(var), range(3)))
    assert len({server.pid for server in redis_servers}) == 1
    assert sum(server.started for server in redis_servers) == 1
    assert len({server.pid for server in postgres_servers}) == 1
    assert sum(server.started for server in postgres_servers) == 1


def test_other_clients_are_counted(var):
    postgres = embedded.postgres_start(var)
    redis_server = embedded.redis_start(var)
    assert postgres.other_clients() == 0
    assert redis_server.other_clients() == 0
    with _connect(postgres):
        assert postgres.other_clients() == 1
    client = redis.Redis.from_url(redis_server.url)
    client.ping()
    assert redis_server.other_clients() == 1
    client.close()


def test_private_files_are_written_whole_and_unreadable_to_others(tmp_path):
    path = tmp_path / "private" / "secret"
    embedded.write_private_file(path, "first")
    assert path.read_text() == "first"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    embedded.write_private_file(path, "second", replace=False)
    assert path.read_text() == "first"  # kept: the first writer wins
    embedded.write_private_file(path, "third")
    assert path.read_text() == "third"
    assert sorted(p.name for p in path.parent.iterdir()) == ["secret"]  # no temporary files left
