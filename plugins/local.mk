# One fragment per plugin folder (plugins/<kind>/<name>/local.mk), each adding to
# pkglib_LTLIBRARIES with $(PLUGIN_LINK). Shared plugin-side helpers live in plugins/common/.
include plugins/common/local.mk
include plugins/dataset/cifar10/local.mk
include plugins/dataset/imagenet_tar/local.mk
include plugins/augment/local.mk
include plugins/backbone/resnet/local.mk
include plugins/method/local.mk
include plugins/equimod/equimod/local.mk
