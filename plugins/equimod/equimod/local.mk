# plugins/equimod/equimod: equimod_equimod.so (MLP head helper compiled in).
pkglib_LTLIBRARIES += plugins/equimod/equimod/equimod_equimod.la
plugins_equimod_equimod_equimod_equimod_la_SOURCES = plugins/equimod/equimod/equimod.c \
	plugins/common/mlp.c plugins/common/mlp.h
plugins_equimod_equimod_equimod_equimod_la_LDFLAGS = $(PLUGIN_LINK)
plugins_equimod_equimod_equimod_equimod_la_LIBADD = -lm
plugins_equimod_equimod_equimod_equimod_la_CFLAGS = $(AM_CFLAGS)
EXTRA_DIST += plugins/equimod/equimod/README.md
