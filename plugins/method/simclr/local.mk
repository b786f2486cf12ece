# plugins/method/simclr: method_simclr.so (MLP head helper compiled in).
pkglib_LTLIBRARIES += plugins/method/simclr/method_simclr.la
plugins_method_simclr_method_simclr_la_SOURCES = plugins/method/simclr/simclr.c \
	plugins/common/mlp.c plugins/common/mlp.h
plugins_method_simclr_method_simclr_la_LDFLAGS = $(PLUGIN_LINK)
plugins_method_simclr_method_simclr_la_LIBADD = -lm
plugins_method_simclr_method_simclr_la_CFLAGS = $(AM_CFLAGS)
EXTRA_DIST += plugins/method/simclr/README.md
