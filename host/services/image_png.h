/* host/services/image_png.h: PNG decoding for api->image (image_png.c) and the format
 * sniffing of image_header / decode. Internal to the host. */
#ifndef EQM_HOST_SERVICES_IMAGE_PNG_H
#define EQM_HOST_SERVICES_IMAGE_PNG_H

#include <stddef.h>

#include <equimod/host_api.h>

enum { IMAGE_UNKNOWN = 0, IMAGE_JPEG = 1, IMAGE_PNG = 2 };
/* The format of an encoded image from its first bytes. */
int image_sniff(const void *data, size_t n);
/* Size of a PNG; *c = 1 (gray, gray + alpha) or 3 (colour, palette). EQM_OK or
 * EQM_ERR_FORMAT with a message on h. */
int image_png_header(eqm_host *h, const void *data, size_t n, int *w, int *ht, int *c);
/* Decode a PNG to 8-bit RGB (Pillow's convert("RGB")) into out->data (cap bytes); when
 * w*h*3 > cap: out->w/h/c set and EQM_GROW. EQM_OK, EQM_GROW, EQM_ERR_FORMAT, NOMEM. */
int image_png_decode(eqm_host *h, const void *data, size_t n, eqm_image *out, size_t cap);

#endif
