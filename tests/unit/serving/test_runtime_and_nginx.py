from __future__ import annotations

from pathlib import Path

from sagedock.serving import nginx
from sagedock.serving.runtime import Runtime
from sagedock.serving.settings import ServingSettings


def runtime(tmp_path: Path, **env: str) -> Runtime:
    settings = ServingSettings.load({"SAGEMAKER_MODEL_SERVER_WORKERS": "3", **env})
    return Runtime(settings, tmp_path, tmp_path / "code", nginx=True)


def test_runtime_round_trips_through_its_file(tmp_path: Path) -> None:
    original = runtime(tmp_path, SAGEMAKER_PROGRAM="entry.py")
    assert Runtime.load(original.save()) == original


def test_ready_once_every_worker_is_then_while_any_worker_is(tmp_path: Path) -> None:
    run = runtime(tmp_path)
    assert not run.any_ready()
    run.mark_ready(0)
    run.mark_ready(2)
    assert not run.any_ready()  # worker 1 is still loading
    run.mark_ready(1)
    assert run.any_ready()
    run.mark_gone(0)
    run.mark_gone(1)
    assert run.any_ready()  # being replaced: worker 2 still answers
    run.mark_gone(2)
    assert not run.any_ready()
    assert run.ready_workers() == 0


def test_config_proxies_to_one_socket_per_worker_with_keepalive(tmp_path: Path) -> None:
    text = nginx.render(nginx.template(), nginx.config_values(runtime(tmp_path)))
    assert "{{" not in text
    for slot in range(3):
        assert f"server unix:{tmp_path}/worker-{slot}.sock max_fails=0;" in text
    assert "least_conn;" in text
    assert "keepalive 64;" in text
    assert 'proxy_set_header Connection "";' in text
    assert f"client_max_body_size {6 * 1024 * 1024};" in text
    assert "listen 8080 " in text
    assert "proxy_read_timeout 62s;" in text


def test_ping_is_not_access_logged_unless_asked(tmp_path: Path) -> None:
    quiet = nginx.config_values(runtime(tmp_path))
    assert quiet["ping_access_log"] == "access_log off;"
    loud = nginx.config_values(runtime(tmp_path, SAGEDOCK_LOG_PING="true"))
    assert loud["ping_access_log"] == ""


def test_no_payload_limit_is_nginx_zero(tmp_path: Path) -> None:
    values = nginx.config_values(runtime(tmp_path, SAGEMAKER_MAX_PAYLOAD_IN_MB="0"))
    assert values["max_body"] == "0"


def _directives(text: str, name: str) -> list[tuple[str, str]]:
    """(enclosing location, value) of every *name* directive of the config (comments out)."""
    found = []
    location = "server"
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("location "):
            location = line.removeprefix("location ").removesuffix("{").strip()
        elif line == "}":
            location = "server"
        elif line.startswith(name + " "):
            found.append((location, line.removeprefix(name).strip(" ;")))
    return found


def test_a_failed_worker_connection_is_retried_elsewhere_but_never_a_timeout(
    tmp_path: Path,
) -> None:
    text = nginx.render(nginx.template(), nginx.config_values(runtime(tmp_path)))
    retries = dict(_directives(text, "proxy_next_upstream"))
    # Predictions: also a POST that reached a dead worker's connection or socket backlog.
    assert retries["= /invocations"] == "error non_idempotent"
    assert retries["~ ^/models/.+/invoke$"] == "error non_idempotent"
    # Everything else (model loading included): only before the request was written.
    assert retries["server"] == "error"
    assert all("timeout" not in v and "http_" not in v for v in retries.values())
    assert not _directives(text, "proxy_next_upstream_tries")  # each worker at most once
