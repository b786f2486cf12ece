# plugins/method/byol: method_byol.so (MLP head helper compiled in).
pkglib_LTLIBRARIES += plugins/method/byol/method_byol.la
plugins_method_byol_method_byol_la_SOURCES = plugins/method/byol/byol.c \
	plugins/common/mlp.c plugins/common/mlp.h
plugins_method_byol_method_byol_la_LDFLAGS = $(PLUGIN_LINK)
plugins_method_byol_method_byol_la_LIBADD = -lm
plugins_method_byol_method_byol_la_CFLAGS = $(AM_CFLAGS)
EXTRA_DIST += plugins/method/byol/README.md
