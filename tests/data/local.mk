# tests/data (owner fills this in)
