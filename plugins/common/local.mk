# plugins/common: helpers compiled INTO plugins (not a library, not installed). Each plugin
# that uses one lists its source in its own <canon>_la_SOURCES (e.g. plugins/common/mlp.c).
EXTRA_DIST += plugins/common/README.md
