# host/shards: tar shard streaming, JPEG image services, shard writer (owner fills this in)
