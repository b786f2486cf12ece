# host/dist: the process group of a data-parallel run (MPI when built with it, else the
# single-process group). dist.c is compiled in every build; MPI flags only with HAVE_MPI.
libeqmhost_la_SOURCES += host/dist/dist.h host/dist/dist.c
libeqmhost_la_CFLAGS += $(MPI_CFLAGS)
libeqmhost_la_LIBADD += $(MPI_LIBS)
libeqmhost_la_SOURCES += host/dist/grad.h host/dist/grad.c
