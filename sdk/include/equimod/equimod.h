/* equimod SDK umbrella header: the only header a plugin needs. The guide for
 * plugin authors is README.md in the SDK documentation ($(docdir), e.g.
 * /usr/local/share/doc/equimod/), with ABI.md (the rules), method-reference.md and
 * examples/ (one plugin of each kind and a Makefile). */
#ifndef EQM_SDK_EQUIMOD_H
#define EQM_SDK_EQUIMOD_H
#include "status.h"
#include "plugin.h"
#include "host_api.h"
#include "nn.h"
#include "kinds.h"
#endif
