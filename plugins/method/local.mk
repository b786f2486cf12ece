# plugins/method: invariance methods (one folder per plugin).
include plugins/method/simclr/local.mk
include plugins/method/byol/local.mk
