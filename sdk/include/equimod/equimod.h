/* equimod SDK umbrella header: the only header a plugin needs. See sdk/README.md. */
#ifndef EQM_SDK_EQUIMOD_H
#define EQM_SDK_EQUIMOD_H
#include "status.h"
#include "plugin.h"
#include "host_api.h"
#include "nn.h"
#include "kinds.h"
#endif
