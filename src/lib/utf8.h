/*
 * utf8.h: UTF-8 well-formedness (RFC 3629 4), for parsers of text that may
 * carry UTF-8 (SMTPUTF8 addresses, alias files).
 */
#ifndef PETREL_LIB_UTF8_H
#define PETREL_LIB_UTF8_H

#include <stddef.h>

/*
 * Length (2 to 4) of the well-formed UTF8-non-ascii sequence at s, or 0
 * if s does not start one: overlong forms, surrogates and code points
 * above U+10FFFF are refused. Never reads past a NUL.
 */
size_t utf8_seq_len(const char *s);

#endif
