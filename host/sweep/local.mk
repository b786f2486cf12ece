# host/sweep: ablation studies (`equimod sweep`): the sweep file and its plan, the runner
# (child `equimod train` processes), results.csv/summary.md; front-end in host/cmd/.
libeqmhost_la_SOURCES += \
	host/sweep/sweep.h \
	host/sweep/internal.h \
	host/sweep/plan.c \
	host/sweep/expand.c \
	host/sweep/planjson.c \
	host/sweep/util.c \
	host/sweep/runner.c \
	host/sweep/results.c \
	host/sweep/html.c \
	host/cmd/sweep.c \
	host/cmd/report.c
