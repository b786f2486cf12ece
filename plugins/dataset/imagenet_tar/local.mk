# plugins/dataset/imagenet_tar: JPEG + class samples streamed from WebDataset tar shards
pkglib_LTLIBRARIES += plugins/dataset/imagenet_tar/dataset_imagenet_tar.la
plugins_dataset_imagenet_tar_dataset_imagenet_tar_la_SOURCES = plugins/dataset/imagenet_tar/imagenet_tar.c
plugins_dataset_imagenet_tar_dataset_imagenet_tar_la_LDFLAGS = $(PLUGIN_LINK)
plugins_dataset_imagenet_tar_dataset_imagenet_tar_la_CFLAGS = $(AM_CFLAGS)
