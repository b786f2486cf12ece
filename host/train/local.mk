# host/train: optimizers, schedules, checkpoints, trainer, evaluation (H7).
libeqmhost_la_SOURCES += \
	host/train/optim.h host/train/optim.c \
	host/train/checkpoint.h host/train/checkpoint.c \
	host/train/eval.h host/train/eval.c \
	host/train/trainer.h host/train/run.h host/train/options.c host/train/run.c \
	host/train/step.c host/train/report.c host/train/trained.c host/train/features.c \
	host/train/linear.c host/train/machine.c
# host/train: model (module instances + flat buffers), safetensors, export command (H3).
libeqmhost_la_SOURCES += \
	host/train/model.h host/train/model.c \
	host/train/safetensors.h host/train/safetensors.c
