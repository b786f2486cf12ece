# host/loader fragment (filled by its owner)
