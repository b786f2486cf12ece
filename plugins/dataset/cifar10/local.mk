# plugins/dataset/cifar10: CIFAR-10 in the official binary format (file I/O through api->io)
pkglib_LTLIBRARIES += plugins/dataset/cifar10/dataset_cifar10.la
plugins_dataset_cifar10_dataset_cifar10_la_SOURCES = plugins/dataset/cifar10/cifar10.c
plugins_dataset_cifar10_dataset_cifar10_la_LDFLAGS = $(PLUGIN_LINK)
plugins_dataset_cifar10_dataset_cifar10_la_CFLAGS = $(AM_CFLAGS)
