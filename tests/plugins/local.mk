# tests/plugins (owner fills this in)
