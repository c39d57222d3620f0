/* libFuzzer harness: the JSON codec and the validator, as the intake runs
 * them on a body (application/json), then the way back (Report -> JSON ->
 * protobuf -> Report) for what decodes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rc_registry.h"
#include "rc_report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rc_errors errs = {0};
    rc_validate_opts opts;
    Rollcall__Report *r = rc_report_from_json_text((const char *)data, size, &errs);
    char msg[512];

    rc_errors_format(&errs, msg, sizeof msg);
    json_decref(rc_errors_to_json(&errs));
    if (!r)
        return 0;
    rc_validate_opts_default(&opts);
    errs.n = 0;
    rc_report_validate(r, &opts, NULL, &errs);
    json_decref(rc_errors_to_json(&errs));
    char *text = rc_report_to_json_text(r);
    size_t len = 0;
    uint8_t *pb = rc_report_pack(r, &len);
    if (pb) {
        Rollcall__Report *back = rc_report_unpack(pb, len, &errs);
        rc_report_free(back);
    }
    free(pb);
    free(text);
    rc_report_free(r);
    return 0;
}
