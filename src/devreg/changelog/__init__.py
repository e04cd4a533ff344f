"""The change log: every change to a record, with who made it, before and after, in one
append-only, hash-chained log written in the change's own transaction (issue 14)."""
