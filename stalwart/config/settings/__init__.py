"""Every declared setting, one module per area. Importing this package fills the registry.

To add settings for another area, add a module here that calls ``section`` once and
``declare`` for each key, and list it below. Keep docs operator-facing: what the setting
does, its unit, and what happens at the default.
"""

from . import server, storage, authentication, certificate, directory, tracer, queue  # noqa: F401
from . import smtp  # noqa: F401
from . import auth  # noqa: F401
from . import dkim  # noqa: F401
from . import mtasts  # noqa: F401  (MTA-STS, TLS reports)
from . import dane  # noqa: F401  (DANE, RFC 7672)
from . import imap  # noqa: F401
