# tests/shards (owner fills this in)
