# plugins/backbone/resnet (owner fills this in)
