"""Router-only agent operations: forwarding counters and interface state
(and, with the impairment engine, impairments)."""
