/* Reads UCL on stdin and prints libucl's compact JSON for it (exit 0), or libucl's
 * error message on stderr (exit 2). Built by tests/libucl_diff.rs. */
#include <stdio.h>
#include <stdlib.h>
#include "ucl.h"
int main(void) {
    size_t cap = 1 << 16, len = 0; unsigned char *buf = malloc(cap); size_t n;
    while ((n = fread(buf + len, 1, cap - len, stdin)) > 0) { len += n; if (len == cap) { cap *= 2; buf = realloc(buf, cap); } }
    struct ucl_parser *p = ucl_parser_new(0);
    if (!ucl_parser_add_chunk(p, buf, len)) { fprintf(stderr, "%s\n", ucl_parser_get_error(p)); return 2; }
    ucl_object_t *o = ucl_parser_get_object(p);
    unsigned char *out = ucl_object_emit(o, UCL_EMIT_JSON_COMPACT);
    printf("%s\n", out);
    return 0;
}
