"""gunicorn settings for bulkops (read from the working directory by default; `make run`
and the test and bench servers name it with `-c`).

Each worker runs `threads` requests at once and accepts no more connections than that,
with no keep-alive: a connection it cannot serve yet waits in the listen backlog, where
any free worker takes it in arrival order. gthread's default (accept up to 1000 and
queue them per worker) let one busy worker hold requests while another sat idle: at 50
concurrent token clients it doubled the p99 (docs/performance.md, "The web server").
"""

from bulkops.settings import VAR_DIR

threads = 4
worker_connections = threads
keepalive = 0

# Forwarded headers are bulkops' to judge (bulkops/forwarded.py: believed only with
# BULKOPS_BEHIND_TLS_PROXY, only from BULKOPS_TRUSTED_PROXIES), so gunicorn believes
# none itself. Its defaults took X-Forwarded-Proto: https from any local process as
# https, and SCRIPT_NAME/PATH_INFO headers as the request's path.
forwarded_allow_ips = ""
secure_scheme_headers: dict[str, str] = {}
forwarder_headers = ""

# The control socket (gunicornc) of this instance, with its other state: gunicorn's
# default, $XDG_RUNTIME_DIR or ~/.gunicorn, is one path for every gunicorn of the user,
# so a second bulkops (or a test server) took over the first one's socket.
control_socket = str(VAR_DIR / "run" / "gunicorn.ctl")


def post_worker_init(worker: object) -> None:
    """Import the URLconf and open the broker connection before the first request
    (bulkops/warm_start.py)."""
    from bulkops.warm_start import warm_web_process

    warm_web_process()
