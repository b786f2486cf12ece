# plugins/augment: one folder per augmentation plugin (augment_<name>.so), each with its
# local.mk; aug_common.h holds the plugin-side helpers compiled into each (scaffolding,
# Pillow-exact luma and blend); resampling is the host's (api->image->resample).
include plugins/augment/random_resized_crop/local.mk
include plugins/augment/horizontal_flip/local.mk
include plugins/augment/color_jitter/local.mk
include plugins/augment/grayscale/local.mk
include plugins/augment/gaussian_blur/local.mk
include plugins/augment/solarize/local.mk
include plugins/augment/normalize/local.mk
include plugins/augment/resize/local.mk
include plugins/augment/center_crop/local.mk
EXTRA_DIST += plugins/augment/aug_common.h
