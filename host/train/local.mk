# host/train: optimizers, schedules, checkpoints, trainer, evaluation (H7).
libeqmhost_la_SOURCES += \
	host/train/optim.h host/train/optim.c \
	host/train/checkpoint.h host/train/checkpoint.c
