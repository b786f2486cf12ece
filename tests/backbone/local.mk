# tests/backbone (owner fills this in)
