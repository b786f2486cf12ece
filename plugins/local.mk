# plugins fragment (filled by its owner)
