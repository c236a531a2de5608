"""The embedded all-in-one server: gateway, compactor and query service in one process."""

from runlake_services.embedded.config import DEFAULT_GRPC_PORT, DEFAULT_HTTP_PORT, ServerConfig

__all__ = ["DEFAULT_GRPC_PORT", "DEFAULT_HTTP_PORT", "ServerConfig", "run_server"]


def run_server(config: ServerConfig) -> None:
    """Serve until SIGINT/SIGTERM; prints a line containing ``ready`` once calls are accepted."""
    from runlake_services.embedded.memory import prepare_process

    prepare_process()  # before the server's imports load delta-rs and pyarrow.dataset
    from runlake_services.embedded.server import run_server as _run

    _run(config)
