/* libFuzzer harness: the protobuf decoder and the validator, as the intake
 * (application/x-protobuf) and the rollup (every consumed message) run
 * them, then the JSON encoder the dead letters and the CLI use. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "rc_report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rc_errors errs = {0};
    rc_validate_opts opts;
    char msg[512];
    Rollcall__Report *r = rc_report_unpack(data, size, &errs);

    if (!r)
        return 0;
    rc_validate_opts_default(&opts);
    opts.require_report_id = true;
    rc_report_validate(r, &opts, NULL, &errs);
    rc_errors_format(&errs, msg, sizeof msg);
    json_decref(rc_errors_to_json(&errs));
    /* What the validator passes must encode as JSON (jansson refuses text
     * that is not UTF-8): the dashboard and the CLI show it. */
    if (errs.n == 0) {
        char *text = rc_report_to_json_text(r);
        if (!text)
            abort();
        free(text);
    }
    rc_report_free(r);
    return 0;
}
