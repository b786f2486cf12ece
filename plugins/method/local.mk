# plugins/method (owner fills this in)
