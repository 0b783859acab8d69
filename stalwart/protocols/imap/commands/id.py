"""ID (RFC 2971): the server names itself. The client's fields are accepted (the parser
limits them to 30 pairs) and only logged at debug level."""

from __future__ import annotations

import logging

from .. import encode

log = logging.getLogger("stalwart.imap")


async def run(s, cmd):
    if cmd.args.params:
        log.debug("client ID %s", dict(cmd.args.params))
    s.untagged(b"ID (" + encode.string("name") + b" " + encode.string(s.server_name) + b")")
    return "ID completed"
