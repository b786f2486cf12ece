// tests/plugins/cxx/cxx_negate.cpp: an equimod plugin written in C++17 (augment/cxx_negate,
// 255 - v on every 8-bit pixel, no record in t), built by tests/plugins/sdk_headers.test and
// scripts/sdk-test.sh with g++ -std=c++17 -Wall -Wextra -Werror against the SDK headers alone
// and checked with `equimod check`: EQM_PLUGIN_ENTRY must give eqm_plugin_entry C linkage.
#include <cstddef>
#include <cstdint>

#include <equimod/equimod.h>

namespace {

struct Negate {
    const eqm_host_api *api;
    eqm_host *host;
};

int create(const eqm_host_api *api, eqm_host *host, const void *, void **self)
{
    auto *s = static_cast<Negate *>(api->alloc(host, sizeof(Negate), 0));
    if (!s)
        return api->set_error(host, EQM_ERR_NOMEM, "out of memory");
    s->api = api;
    s->host = host;
    *self = s;
    return EQM_OK;
}

void destroy(void *self)
{
    auto *s = static_cast<Negate *>(self);
    if (s)
        s->api->free(s->host, s);
}

int n_params(const void *) { return 0; }

int sample(const void *, eqm_rng *, const eqm_augment_ctx *, const eqm_image *, float *)
{
    return EQM_OK;
}

int out_shape(const void *, const eqm_image *in, int *w, int *h, int *c, uint32_t *format)
{
    *w = in->w, *h = in->h, *c = in->c, *format = in->format;
    return EQM_OK;
}

int apply(const void *self, const float *, const eqm_image *in, eqm_image *out, void *)
{
    const auto *s = static_cast<const Negate *>(self);
    if (in->format != EQM_PIX_U8)
        return s->api->set_error(s->host, EQM_ERR_UNSUPPORTED, "8-bit images only");
    for (int y = 0; y < in->h; y++) {
        const auto *a = static_cast<const uint8_t *>(in->data) + std::size_t(y) * in->stride;
        auto *b = static_cast<uint8_t *>(out->data) + std::size_t(y) * out->stride;
        for (int x = 0; x < in->w * in->c; x++)
            b[x] = static_cast<uint8_t>(255 - a[x]);
    }
    return EQM_OK;
}

eqm_augment_ops make_ops()
{
    eqm_augment_ops o{};
    o.size = sizeof o;
    o.create = create;
    o.destroy = destroy;
    o.n_params = n_params;
    o.sample = sample;
    o.out_shape = out_shape;
    o.apply = apply;
    return o;
}

const eqm_augment_ops ops = make_ops();
const eqm_plugin_desc desc = {EQM_DESC_HEADER(EQM_KIND_AUGMENT), "cxx_negate", "1.0.0",
                              "invert 8-bit images (a C++17 plugin)", nullptr, 0, &ops};
const eqm_plugin_desc *const descs[] = {&desc};

} // namespace

EQM_PLUGIN_ENTRY(descs)
