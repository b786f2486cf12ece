# plugins/dataset/imagenet_tar (owner fills this in)
