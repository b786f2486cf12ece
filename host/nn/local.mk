# host/nn sources (owner fills this in): add to libeqmhost_la_SOURCES
