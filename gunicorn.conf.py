"""gunicorn settings for bulkops (read from the working directory by default; `make run`
and the test and bench servers name it with `-c`).

Each worker runs `threads` requests at once and accepts no more connections than that,
with no keep-alive: a connection it cannot serve yet waits in the listen backlog, where
any free worker takes it in arrival order. gthread's default (accept up to 1000 and
queue them per worker) let one busy worker hold requests while another sat idle: at 50
concurrent token clients it doubled the p99 (docs/performance.md, "The web server").
"""

threads = 4
worker_connections = threads
keepalive = 0
