# plugins/common (owner fills this in)
