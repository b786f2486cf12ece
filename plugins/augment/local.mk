# plugins/augment (owner fills this in)
