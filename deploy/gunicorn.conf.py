"""Gunicorn settings for one Kelly OS app process behind nginx (deploy/README.md).

    gunicorn -c deploy/gunicorn.conf.py kellyos.wsgi:application

Each instance listens on GUNICORN_BIND (the systemd unit kellyos-web@PORT sets 127.0.0.1:PORT, or a
private address when nginx runs on another host).
"""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8001")

# Threads, not sync workers: every open live-update stream (/events, a cashier's waiting screen,
# an accountant's dashboard) holds one thread for up to EVENTS_STREAM_SECONDS, and with sync workers
# it would hold a whole process. Booking is database-bound, so a thread waiting on PostgreSQL leaves
# the CPU to the others.
worker_class = "gthread"
# The GIL lets one thread per process run Python at a time; two processes per core keep the cores
# busy while the other process's threads wait on PostgreSQL (4 on the 2-core benchmark machine).
workers = int(os.environ.get("GUNICORN_WORKERS", 2 * (os.cpu_count() or 1)))
# Concurrent requests and open streams per process; each thread keeps its own database connection
# (CONN_MAX_AGE), so workers x threads x instances is what PgBouncer's max_client_conn must admit.
threads = int(os.environ.get("GUNICORN_THREADS", "8"))


def post_fork(server: object, worker: object) -> None:
    """Tell the app the threads it really has (--threads may override the above): it limits the
    live-update streams and the calls to Daraja by them, keeping threads free for Safaricom's
    callbacks (EVENTS_STREAMS_PER_PROCESS, MPESA_CALLS_PER_PROCESS)."""
    os.environ["GUNICORN_THREADS"] = str(worker.cfg.threads)  # type: ignore[attr-defined]


# A worker that stops answering the arbiter this long is killed. Streams do not count: the worker's
# main loop keeps answering while a thread streams.
timeout = 60
# On restart, requests in flight (a confirmation being booked) get this long to finish.
graceful_timeout = 30
# nginx keeps connections to the upstream open (keepalive in deploy/nginx/kellyos.conf).
keepalive = 75
# Recycle a worker now and then, staggered, so slow growth in memory never becomes an outage.
max_requests = 5000
max_requests_jitter = 500

# nginx on this host is the only client; X-Forwarded-* from anyone else is not believed.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")

# Access log to stdout (journald), with the request id nginx generated, so a line here, a line in
# nginx's log and the application's JSON log lines can be joined.
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms request_id=%({x-request-id}i)s'
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "warning")
