# tests/nn (owner fills this in)
