# plugins/equimod/equimod (owner fills this in)
