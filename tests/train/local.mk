# tests/train (owner fills this in)
