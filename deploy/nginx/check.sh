#!/usr/bin/env bash
# Drill: nginx with deploy/nginx/kellyos.conf, on free high ports with a self-signed certificate.
#
#   deploy/nginx/check.sh                      # nginx -t only
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/kellyos deploy/nginx/check.sh
#                                              # and nginx in front of two real app processes
#
# With DATABASE_URL it makes a fresh database <name>_nginx, starts two gunicorn instances with
# deploy/gunicorn.conf.py and production settings (DEBUG off), puts nginx in front and checks: the
# HTTP->HTTPS redirect, /health over HTTP, X-Forwarded-Proto believed (no redirect loop, HSTS),
# X-Request-ID generated and returned, a Safaricom callback allowed or refused by the caller's real
# address whatever X-Forwarded-For it forges, the body limits, /metrics, and an /events stream that
# arrives unbuffered. Everything it started is stopped. Exits 0 with SKIP without nginx.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
PYTHON=${PYTHON:-.venv/bin/python}
if ! command -v nginx >/dev/null; then
    echo "SKIP: nginx is not installed (apt-get install nginx); nothing was checked."
    exit 0
fi

WORK=$(mktemp -d /tmp/kellyos-nginx.XXXXXX)
chmod 755 "$WORK"
PIDS=()
DRILL_DB=
stop() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -n "$DRILL_DB" ]; then
        psql -q -d "${DATABASE_URL%/*}/postgres" -c "DROP DATABASE IF EXISTS \"$DRILL_DB\" WITH (FORCE)" || true
    fi
    rm -rf "$WORK"
}
trap stop EXIT

read -r HTTP_PORT HTTPS_PORT APP1 APP2 < <("$PYTHON" -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
')

openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=payments.example.co.ke" \
    -keyout "$WORK/privkey.pem" -out "$WORK/fullchain.pem" 2>/dev/null
mkdir -p "$WORK/static" "$WORK/tmp"
chmod 777 "$WORK/tmp"

# The config as shipped, with only addresses, ports and paths moved into the sandbox.
sed -e "s#listen 80;#listen 127.0.0.1:${HTTP_PORT};#" \
    -e "s#listen 443 ssl http2;#listen 127.0.0.1:${HTTPS_PORT} ssl http2;#" \
    -e "/listen \[::\]/d" \
    -e "s#/etc/letsencrypt/live/payments.example.co.ke#${WORK}#" \
    -e "s#/etc/nginx/kellyos_proxy.conf#${ROOT}/deploy/nginx/kellyos_proxy.conf#" \
    -e "s#/var/log/nginx/#${WORK}/#" \
    -e "s#/srv/kellyos/var/static/#${WORK}/static/#" \
    -e "s#server 127.0.0.1:8001 #server 127.0.0.1:${APP1} #" \
    -e "s#server 127.0.0.1:8002 #server 127.0.0.1:${APP2} #" \
    deploy/nginx/kellyos.conf >"$WORK/kellyos.conf"
cat >"$WORK/nginx.conf" <<CONF
worker_processes 1;
pid ${WORK}/nginx.pid;
error_log ${WORK}/error.log;
events { worker_connections 256; }
http {
    include /etc/nginx/mime.types;
    client_body_temp_path ${WORK}/tmp/body;
    proxy_temp_path ${WORK}/tmp/proxy;
    fastcgi_temp_path ${WORK}/tmp/fastcgi;
    uwsgi_temp_path ${WORK}/tmp/uwsgi;
    scgi_temp_path ${WORK}/tmp/scgi;
    include ${WORK}/kellyos.conf;
}
CONF
nginx -t -q -c "$WORK/nginx.conf" -p "$WORK"
echo "ok   nginx -t: deploy/nginx/kellyos.conf + kellyos_proxy.conf ($(nginx -v 2>&1))"

if [ -z "${DATABASE_URL:-}" ]; then
    echo "Set DATABASE_URL to also run nginx in front of two app processes."
    exit 0
fi

TOKEN=nginxdrill0123456789abcdef0123456789abcdef
METRICS=metricsdrill0123456789
NAME=$("$PYTHON" -c 'import os; from urllib.parse import urlsplit; print(urlsplit(os.environ["DATABASE_URL"]).path.lstrip("/") or "kellyos")')
export DATABASE_URL="${DATABASE_URL%/*}/${NAME}_nginx" DEBUG=false DJANGO_SETTINGS_MODULE=kellyos.settings.base \
    SECRET_KEY=nginx-drill-secret-key-long-enough-to-look-like-a-real-one-0123456789 \
    ALLOWED_HOSTS=payments.example.co.ke SECURE_PROXY_SSL_HEADER_ENABLED=true LOG_LEVEL=WARNING \
    CONN_MAX_AGE=600 MPESA_WEBHOOK_TOKEN=$TOKEN METRICS_TOKEN=$METRICS \
    MPESA_TRUSTED_PROXIES=127.0.0.1 MPESA_ALLOWED_IPS=127.0.0.3 EVENTS_STREAM_SECONDS=5 STATIC_ROOT="$WORK/static"
DRILL_DB=${NAME}_nginx
PGOPTIONS="-c client_min_messages=warning" psql -q -d "${DATABASE_URL%/*}/postgres" \
    -c "DROP DATABASE IF EXISTS \"$DRILL_DB\" WITH (FORCE)" -c "CREATE DATABASE \"$DRILL_DB\""
"$PYTHON" manage.py migrate -v0
"$PYTHON" manage.py collectstatic --noinput -v0
for port in "$APP1" "$APP2"; do
    GUNICORN_BIND=127.0.0.1:$port GUNICORN_WORKERS=2 GUNICORN_THREADS=4 \
        .venv/bin/gunicorn -c deploy/gunicorn.conf.py kellyos.wsgi:application >>"$WORK/gunicorn.log" 2>&1 &
    PIDS+=($!)
done
nginx -c "$WORK/nginx.conf" -p "$WORK" -g "daemon off;" &
PIDS+=($!)
for _ in $(seq 100); do
    curl -fsS -o /dev/null -H "Host: payments.example.co.ke" "http://127.0.0.1:${APP1}/health" 2>/dev/null \
        && curl -fsS -o /dev/null -H "Host: payments.example.co.ke" "http://127.0.0.1:${APP2}/health" 2>/dev/null \
        && break
    sleep 0.3
done

failures=0
check() {  # description, expected, actual
    if [ "$2" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1: expected $2, got $3"; failures=$((failures + 1)); fi
}
HOST=payments.example.co.ke
https=(curl -sk --resolve "$HOST:${HTTPS_PORT}:127.0.0.1")
BASE="https://$HOST:${HTTPS_PORT}"

check "HTTP redirects to HTTPS" 301 "$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $HOST" "http://127.0.0.1:${HTTP_PORT}/admin/")"
check "GET /health over HTTP (load balancers)" 200 "$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $HOST" "http://127.0.0.1:${HTTP_PORT}/health")"
check "HTTPS login page: X-Forwarded-Proto believed, no redirect loop" 200 \
    "$("${https[@]}" -o /dev/null -w '%{http_code}' "$BASE/accounts/login/")"
check "HSTS from Django over HTTPS" 1 "$("${https[@]}" -D - -o /dev/null "$BASE/accounts/login/" | grep -ci '^strict-transport-security')"
rid=$("${https[@]}" -D - -o /dev/null "$BASE/health" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-request-id" {print $2}')
check "X-Request-ID generated by nginx (32 hex) and returned" yes "$([[ $rid =~ ^[0-9a-f]{32}$ ]] && echo yes || echo "'$rid'")"
check "the same request id is in nginx's access log" 1 "$(grep -c "request_id=$rid" "$WORK/kellyos.access.log")"

body=$("$PYTHON" -c 'import json; from tests.mpesa.payloads import c2b; print(json.dumps(c2b(trans_id="NGX0000001", amount="100", account="NOSUCH1")))')
confirm="$BASE/api/webhooks/c2b/$TOKEN/confirmation"
check "callback from 127.0.0.2 forging X-Forwarded-For: 196.201.214.200 is refused" 403 \
    "$("${https[@]}" --interface 127.0.0.2 -o /dev/null -w '%{http_code}' -H 'X-Forwarded-For: 196.201.214.200' -H 'Content-Type: application/json' -d "$body" "$confirm")"
check "callback from an allowed address (127.0.0.3) is booked" '{"ResultCode":0,"ResultDesc":"Success"} 200' \
    "$("${https[@]}" --interface 127.0.0.3 -w ' %{http_code}' -H 'Content-Type: application/json' -d "$body" "$confirm")"
check "a 20 KiB callback body reaches the app, which answers 413" 413 \
    "$(head -c 20480 /dev/zero | tr '\0' 'x' | "${https[@]}" --interface 127.0.0.3 -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @- "$confirm")"
check "a 100 KiB callback body is stopped by nginx" 413 \
    "$(head -c 102400 /dev/zero | tr '\0' 'x' | "${https[@]}" --interface 127.0.0.3 -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @- "$confirm")"
check "/metrics with the bearer token" 200 "$("${https[@]}" -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $METRICS" "$BASE/metrics")"
check "/metrics from outside the allowed networks" 403 "$("${https[@]}" --interface 127.0.0.2 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $METRICS" "$BASE/metrics")"

session=$("$PYTHON" - <<'PY'
import django
django.setup()
from django.contrib.auth.models import Permission, User
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
user = User.objects.create_user("drill-accountant", password=None, is_staff=True)
user.user_permissions.add(Permission.objects.get(codename="view_invoice"))
session = SessionStore()
session.update({SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
                HASH_SESSION_KEY: user.get_session_auth_hash()})
session.create()
print(session.session_key)
PY
)
"${https[@]}" -N --max-time 4 -b "sessionid=$session" "$BASE/events" >"$WORK/events.txt" 2>/dev/null &
stream=$!
sleep 1.5
"${https[@]}" --interface 127.0.0.3 -o /dev/null -H 'Content-Type: application/json' \
    -d "$("$PYTHON" -c 'import json; from tests.mpesa.payloads import c2b; print(json.dumps(c2b(trans_id="NGX0000002", amount="50", account="NOSUCH2")))')" "$confirm"
sleep 1
check "/events: the stream's first lines arrive at once" 1 "$(grep -c '^retry: 2000' "$WORK/events.txt")"
check "/events: a payment booked meanwhile arrives on the open stream" yes \
    "$(grep -q '^event: ' "$WORK/events.txt" && echo yes || echo no)"
wait "$stream" || true

if [ "$failures" -gt 0 ]; then
    echo "$failures check(s) failed; nginx error log:"; cat "$WORK/error.log"; exit 1
fi
echo "all checks passed"
