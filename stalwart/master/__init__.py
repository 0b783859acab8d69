"""The master process (``stalwart-master``): configuration, sockets, supervision, signals.

- ``main``: the command line (``--config``, ``--check-config``), preloading, start.
- ``arbiter.Arbiter``: the supervision loop (signals, reaping, heartbeats, reload, drain).
- ``pools``: services, slots with stable indexes and respawn throttles, workers.
- ``sockets``: the master-owned SO_REUSEPORT sockets, one per address and slot; the
  admin socket.
- ``privileges``: run-as identity and the state directories it must own.
- ``notify``: the sd_notify client (READY, RELOADING, STOPPING, STATUS).
"""
