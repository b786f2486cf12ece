# host/nn: the nn ops table (api->nn), see sdk/include/equimod/nn.h.
libeqmhost_la_SOURCES += \
	host/nn/nn_internal.h \
	host/nn/nn_api.c \
	host/nn/conv2d.c \
	host/nn/winograd.c \
	host/nn/direct.c \
	host/nn/batchnorm.c \
	host/nn/elementwise.c \
	host/nn/pool.c \
	host/nn/linear.c \
	host/nn/gemm_bf16.c \
	host/nn/amx_dw.c \
	host/nn/amx_conv.c \
	host/nn/loss.c
