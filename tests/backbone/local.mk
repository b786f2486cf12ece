# tests/backbone: resnet plugin (dlopen), model flat buffers, safetensors, PyTorch interchange.
check_PROGRAMS += tests/backbone/check_backbone
TESTS += tests/backbone/check_backbone tests/backbone/torch_load.sh
tests_backbone_check_backbone_SOURCES = tests/backbone/check_backbone.c
tests_backbone_check_backbone_CFLAGS = $(TEST_CFLAGS)
tests_backbone_check_backbone_LDADD = libeqmhost.la $(TEST_LIBS)
# resnet_forward: helper of torch_load.sh (equimod's forward of an exported file).
check_PROGRAMS += tests/backbone/resnet_forward
tests_backbone_resnet_forward_SOURCES = tests/backbone/resnet_forward.c
tests_backbone_resnet_forward_CFLAGS = $(AM_CFLAGS)
tests_backbone_resnet_forward_LDADD = libeqmhost.la
EXTRA_DIST += tests/backbone/gen_fixtures.py tests/backbone/st_io.py \
	tests/backbone/torch_load.py tests/backbone/torch_load.sh \
	tests/backbone/fixtures/r18_weights.safetensors tests/backbone/fixtures/r18_ref.safetensors \
	tests/backbone/fixtures/r50_weights.safetensors tests/backbone/fixtures/r50_ref.safetensors
