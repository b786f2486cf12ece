# tests/unit (owner fills this in)
