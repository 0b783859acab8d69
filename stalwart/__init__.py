"""Stalwart mail server, in Python."""
