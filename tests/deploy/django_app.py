"""A Django app that answers what Django makes of the request: is_secure(),
get_host(), build_absolute_uri() and REMOTE_ADDR (no proxy settings: the
server's environ is what Django reads)."""
import django
from django.conf import settings

if not settings.configured:
    settings.configure(DEBUG=False, SECRET_KEY="test-only", ROOT_URLCONF=__name__,
                       ALLOWED_HOSTS=["*"], MIDDLEWARE=[], INSTALLED_APPS=[])
    django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402


def whoami(request):
    return JsonResponse({"secure": request.is_secure(), "host": request.get_host(),
                         "url": request.build_absolute_uri(),
                         "remote": request.META["REMOTE_ADDR"]})


urlpatterns = [path("whoami", whoami)]
application = get_wsgi_application()
