"""The framework floor for bench/c2b_load.py: Kelly OS's URLs plus one bare endpoint, served by the
same gunicorn with the same middleware, that only stores the raw body and answers Success."""

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from kellyos.urls import urlpatterns as kellyos_urlpatterns

RAW_BODY_TABLE = "bench_raw_body"


@csrf_exempt
def raw_body_store(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {RAW_BODY_TABLE} (body) VALUES (%s)", [request.body.decode()])
    return JsonResponse({"ResultCode": 0, "ResultDesc": "Success"})


urlpatterns = [path("bench/raw-body", raw_body_store), *kellyos_urlpatterns]
