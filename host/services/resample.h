/* host/services/resample.h: the host's one image resampler (host-internal; plugins reach it
 * as api->image->resample and api->image->crop_resize, host_api.h).
 */
#ifndef EQM_HOST_SERVICES_RESAMPLE_H
#define EQM_HOST_SERVICES_RESAMPLE_H

#include <equimod/equimod.h>

/* api->image->resample with `who` naming the entry point in error messages. */
int image_resample(eqm_host *h, const char *who, const eqm_image *in, const double box[4],
                   int flags, eqm_image *out);

#endif
