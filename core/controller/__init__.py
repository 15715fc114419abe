"""The execution controller: one state machine per tool call, defined once."""
