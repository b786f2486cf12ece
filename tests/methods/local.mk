# tests/methods (owner fills this in)
