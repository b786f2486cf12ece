# tests fragment (filled by its owner)
