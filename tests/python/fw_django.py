"""A small Django app, configured in-process, served by both gunicorn and
Piston in test_frameworks."""
import hashlib
import os

import django
from django.conf import settings

HERE = os.path.dirname(os.path.abspath(__file__))

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="test-only-not-secret",
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["*"],
        MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
        INSTALLED_APPS=[],
        USE_TZ=True,
        DEFAULT_CHARSET="utf-8",
    )
    django.setup()

from django.http import (FileResponse, HttpResponse, HttpResponseRedirect, Http404,  # noqa: E402
                         JsonResponse, StreamingHttpResponse)
from django.urls import path  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402


def index(request):
    name = request.GET.get("name", "world")
    return HttpResponse("<h1>Hello %s</h1>" % name)


def json_view(request):
    return JsonResponse({"ok": True, "method": request.method, "list": [1, 2, 3]})


@csrf_exempt
def form(request):
    out = {"fields": {k: v for k, v in request.POST.items()}}
    f = request.FILES.get("upload")
    if f:
        data = f.read()
        out["file"] = {"name": f.name, "size": len(data), "md5": hashlib.md5(data).hexdigest()}
    return JsonResponse(out)


def cookie(request):
    resp = HttpResponse("cookie set")
    resp.set_cookie("flavour", "oatmeal", httponly=True)
    return resp


def read_cookie(request):
    return HttpResponse("flavour=%s" % request.COOKIES.get("flavour", "none"))


def go(request):
    return HttpResponseRedirect("/?name=redirected")


def stream(request):
    return StreamingHttpResponse(("line %d\n" % i for i in range(5)), content_type="text/plain")


def file(request):
    return FileResponse(open(os.path.join(HERE, "apps.py"), "rb"), content_type="text/plain")


def missing(request):
    raise Http404("nope")


urlpatterns = [
    path("", index),
    path("json", json_view),
    path("form", form),
    path("cookie", cookie),
    path("readcookie", read_cookie),
    path("redirect", go),
    path("stream", stream),
    path("file", file),
    path("missing", missing),
]

application = get_wsgi_application()
