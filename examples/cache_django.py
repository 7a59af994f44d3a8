"""A Django view answered by the engine's response cache: one file, no
project directory.

    piston examples.cache_django:application --bind 127.0.0.1:8000 \
        --cache-size 64000000

GET /feed is rendered by Django once every 5 seconds, however many clients
ask; Piston answers the rest from C (with Age, 304 for If-None-Match, HEAD
and byte ranges from the stored response).
"""
import datetime

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    SECRET_KEY="example-only",
    MIDDLEWARE=["django.middleware.http.ConditionalGetMiddleware"],  # ETag
)
django.setup()

from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

import piston  # noqa: E402


@piston.cache(ttl=5)
def feed(request):
    items = [{"n": i, "title": "item %d" % i} for i in range(20)]
    return JsonResponse({"at": datetime.datetime.now().isoformat(), "items": items})


def purge(request):
    return JsonResponse({"purged": piston.purge("/feed")})


urlpatterns = [path("feed", feed), path("purge", purge)]
application = get_wsgi_application()
