"""Schema migrations, one `NNNN_name.<backend>.sql` file per step and backend."""

from __future__ import annotations

from importlib import resources


def migration_scripts(backend: str) -> list[tuple[int, str, str]]:
    """(version, name, sql) for every migration of `backend`, in order."""
    found = []
    for entry in resources.files(__name__).iterdir():
        parts = entry.name.split(".")
        if len(parts) == 3 and parts[1] == backend and parts[2] == "sql":
            version = int(parts[0].split("_", 1)[0])
            found.append((version, parts[0], entry.read_text(encoding="utf-8")))
    return sorted(found)


def split_statements(script: str) -> list[str]:
    """Our migration files put each statement's closing `;` at the end of a line; the one
    procedural form they hold, SQLite's `CREATE TRIGGER … BEGIN … END;`, ends only at its
    `END;` line (its body's statements end in `;` too). So splitting there is exact."""
    statements = []
    current: list[str] = []
    for line in script.splitlines():
        if line.lstrip().startswith("--"):
            continue
        current.append(line)
        in_trigger = current[0].lstrip().upper().startswith("CREATE TRIGGER")
        ends = line.strip().upper() == "END;" if in_trigger else line.rstrip().endswith(";")
        if ends:
            statements.append("\n".join(current).strip().rstrip(";"))
            current = []
    tail = "\n".join(current).strip()
    if tail:
        statements.append(tail)
    return statements
