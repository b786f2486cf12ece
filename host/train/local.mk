# host/train fragment (filled by its owner)
