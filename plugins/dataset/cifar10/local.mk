# plugins/dataset/cifar10 (owner fills this in)
