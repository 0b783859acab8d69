"""Settings of logging ("tracers", Stalwart's term): where events go and how much."""

from __future__ import annotations

from ..registry import declare, section
from ..types import Bool, Enum, String

section("tracer", """
Logging destinations, one table per destination: `[tracer.<id>]`. Each failed login is
logged at `warn` as one stable line that fail2ban can match. A file without any
`[tracer.<id>]` table logs to standard output as text at `info`; a file whose tracers are
all disabled logs nothing.
""")

LEVELS = ("error", "warn", "info", "debug", "trace")

declare("tracer.<id>.type", Enum(("stdout", "log", "journal")), """
    `stdout` (standard output, for containers and `systemd` without journald
    integration), `log` (files in `path`) or `journal` (journald).""",
    section="tracer", required=True)

declare("tracer.<id>.level", Enum(LEVELS), """
    Lowest level of the events written.""",
    section="tracer", default="info")

declare("tracer.<id>.format", Enum(("text", "json")), """
    `text` (one human-readable line per event) or `json` (one JSON object per line).""",
    section="tracer", default="text")

declare("tracer.<id>.path", String(), """
    Directory of the log files (required for type `log`). A relative path is taken
    relative to `storage.directory`.""",
    section="tracer")

declare("tracer.<id>.prefix", String(), """
    File name prefix of the log files (type `log`).""",
    section="tracer", default="stalwart")

declare("tracer.<id>.enable", Bool(), """
    Set to false to keep a tracer in the file without using it.""",
    section="tracer", default=True)
