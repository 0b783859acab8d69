"""stalwart-cli, the command-line client of the management API (``main.main``)."""
