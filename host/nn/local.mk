# host/nn fragment (filled by its owner)
