/*
 * authres.h: the Authentication-Results header field (RFC 8601): a
 * builder for the one Petrel adds, a check of a field's syntax, and the
 * test that finds forged fields naming our host.
 *
 *   struct authres *ar = authres_new("mx.example.org");
 *   authres_add(ar, "spf", "pass", NULL);
 *   authres_prop(ar, "smtp", "mailfrom", "example.org");
 *   authres_add(ar, "dmarc", "pass", "p=reject");
 *   authres_prop(ar, "header", "from", "example.org");
 *   authres_format(ar, &buf);
 *     -> "Authentication-Results: mx.example.org; spf=pass\r\n"
 *        " smtp.mailfrom=example.org; dmarc=pass (p=reject)\r\n"
 *        " header.from=example.org\r\n"          (folded as needed)
 *   authres_free(ar);
 *
 *   if (authres_claims_host(value, conf->hostname)) drop the field;
 *
 * SECURITY: authres_claims_host() and authres_parse() read fields of
 * untrusted messages: bounded by the value's length, comments nest by a
 * counter up to AUTHRES_COMMENT_DEPTH, no recursion, linear time. The
 * builder's inputs (domains, selectors, reasons) may come from the
 * message or the DNS: values are quoted, comments escaped, and control
 * characters or ill-formed UTF-8 never reach the header.
 * STANDARDS: RFC 8601 2.2 (syntax), 2.3 (authserv-id), 2.7 (methods,
 * results, properties), 5 (removing forged fields), Appendix B; RFC 2045
 * 5.1 (token, tspecials, value); RFC 5322 3.2.2 (CFWS), 3.2.4
 * (quoted-string), 2.2.3 (folding); RFC 5321 4.1.2 (Keyword); RFC 6532
 * (UTF-8 in quoted strings and comments).
 */
#ifndef PETREL_MSGAUTH_AUTHRES_H
#define PETREL_MSGAUTH_AUTHRES_H

#include <stdbool.h>
#include <stddef.h>

struct buf;

/* Limits of the builder: results, properties per result, octets of one
 * comment, reason or value (longer comments are cut, longer values
 * refused). */
#define AUTHRES_RESULTS_MAX	32
#define AUTHRES_PROPS_MAX	8
#define AUTHRES_TEXT_MAX	256
/* Comments nested deeper than this make a field unreadable. */
#define AUTHRES_COMMENT_DEPTH	16

struct authres;

/* A new field for authserv_id (our hostname; copied). Never NULL. */
struct authres *authres_new(const char *authserv_id);
void authres_free(struct authres *ar);	/* NULL is a no-op */

/*
 * Add a result "method=result" (RFC 8601 2.2 methodspec), with comment
 * (may be NULL) in parentheses after it: '(', ')' and '\' are escaped,
 * control characters and ill-formed UTF-8 become '?', text over
 * AUTHRES_TEXT_MAX octets is cut at a character boundary. method and
 * result must be Keywords (letters, digits, '-' inside). Returns 0, or -1
 * (nothing added) for a bad keyword or past AUTHRES_RESULTS_MAX.
 */
int authres_add(struct authres *ar, const char *method, const char *result,
    const char *comment);

/*
 * reason=VALUE on the last result (RFC 8601 2.2 reasonspec), quoted as
 * needed. Returns 0, or -1 with no result yet, a second reason, or a value
 * authres_prop() would refuse.
 */
int authres_reason(struct authres *ar, const char *reason);

/*
 * ptype.property=value on the last result ("smtp", "mailfrom",
 * "example.org"). ptype and property must be Keywords. The value is
 * written as it is when it is an RFC 2045 token or an RFC 8601 pvalue of
 * the form [local-part]@domain-name ("user@example.org",
 * "@example.org"), else as a quoted-string ("ab/cd+=" for a header.b).
 * Returns 0, or -1 with no result yet, past AUTHRES_PROPS_MAX, a bad
 * keyword, an empty value or one over AUTHRES_TEXT_MAX octets, a control
 * character or ill-formed UTF-8 in it.
 */
int authres_prop(struct authres *ar, const char *ptype, const char *property,
    const char *value);

/* Results added so far. */
size_t authres_count(const struct authres *ar);

/*
 * Append the whole field to out: "Authentication-Results: " authserv-id,
 * then "; " and each result, or "; none" when there is none (RFC 8601
 * 2.2 no-result), and CRLF. Lines are folded (CRLF SP, RFC 5322 2.2.3)
 * at the spaces between results and between the parts of one, so that
 * they stay within 78 octets where the parts allow; unfolding gives the
 * one-line form back. Returns 0, or -1 (EMSGSIZE) when out is full.
 */
int authres_format(const struct authres *ar, struct buf *out);

/*
 * Check value[0..len) (the text after "Authentication-Results:",
 * folded or not; a final CRLF is allowed) against RFC 8601 2.2. Puts the
 * authserv-id (unquoted) into id (size idsize; may be NULL; an id that
 * does not fit is refused as an error, never cut short) and returns
 * the number of results (0 for "none"), or -1 on a syntax error with
 * *error_r (if not NULL) set to a static English phrase. Accepts, as
 * go-msgauth and others do, a lone ';' at the end.
 */
int authres_parse(const char *value, size_t len, char *id, size_t idsize,
    const char **error_r);

/*
 * Does this Authentication-Results value claim to come from hostname
 * (RFC 8601 5: fields naming our authserv-id that arrive from outside are
 * forged and must go)? True when its authserv-id, after CFWS, unquoted,
 * equals hostname in ASCII case with one trailing dot ignored on either,
 * whatever follows (a version number, a malformed remainder). Also true
 * when the value cannot be read as far as its authserv-id (empty,
 * unbalanced comment, a control character, an authserv-id run into a
 * special): a field no reader can attribute safely is removed too, which
 * RFC 8601 5 allows for any field from outside. value is NUL-terminated;
 * authres_claims_hostn() takes a length.
 */
bool authres_claims_host(const char *value, const char *hostname);
bool authres_claims_hostn(const char *value, size_t len,
    const char *hostname);

#endif
