"""Sans-IO protocol tests: parsers and state machines fed bytes, no sockets."""
