/* libFuzzer harness: the length-delimited batch framing of
 * POST /v1/reports:batch (application/x-protobuf), then each item through
 * the decoder and validator.  The framing must never read past the body. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rc_report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so ASan sees any read past the end. */
    uint8_t *buf = malloc(size ? size : 1);
    size_t off = 0, len, n = 0;
    const uint8_t *item;
    int more;

    if (!buf)
        return 0;
    memcpy(buf, data, size);
    while ((more = rc_report_stream_next(buf, size, &off, &item, &len)) > 0) {
        rc_errors errs = {0};
        rc_validate_opts opts;
        if (item < buf || item + len > buf + size || off > size)
            abort();
        Rollcall__Report *r = rc_report_unpack(item, len, &errs);
        if (r) {
            rc_validate_opts_default(&opts);
            rc_report_validate(r, &opts, NULL, &errs);
        }
        rc_report_free(r);
        if (++n > size + 1)     /* every item costs at least its length byte */
            abort();
    }
    free(buf);
    return 0;
}
