"""One module per SMTP command (or family): each exports ``handle(machine, arg)`` style
functions that check arguments, queue replies and, when policy or I/O must decide, call
``machine.request(event, on_answer)``. Sequence rules (which state allows which verb)
are checked by the machine's ``SEQUENCE`` table before a handler runs."""
