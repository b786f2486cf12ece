# plugins/backbone/resnet: torchvision ResNet-18/34/50 backbone (file backbone_resnet.so).
pkglib_LTLIBRARIES += plugins/backbone/resnet/backbone_resnet.la
plugins_backbone_resnet_backbone_resnet_la_SOURCES = plugins/backbone/resnet/resnet.c
plugins_backbone_resnet_backbone_resnet_la_LDFLAGS = $(PLUGIN_LINK)
plugins_backbone_resnet_backbone_resnet_la_CFLAGS = $(AM_CFLAGS)
plugins_backbone_resnet_backbone_resnet_la_LIBADD = -lm
EXTRA_DIST += plugins/backbone/resnet/README.md
