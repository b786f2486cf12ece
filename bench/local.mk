# bench fragment (filled by its owner)
