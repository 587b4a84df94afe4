import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bulkops.settings")
application = get_wsgi_application()

# Django's system checks do not run under gunicorn: a web host of a multi-host
# installation missing a shared setting stops here, before it serves a request.
from bulkops.multihost import refuse_unshared_settings  # noqa: E402 - needs Django set up

refuse_unshared_settings()
