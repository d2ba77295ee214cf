/*
 * hdraddr.h: the RFC 5322 3.4 address-list of a header field value (From:,
 * Sender:, To:, Cc:, Bcc:, Reply-To:), with the obsolete forms of RFC 5322
 * 4.4 that are not ambiguous and RFC 6532 UTF-8. Finds the mailboxes a
 * header names and reports each as an addr-spec "local@domain" with
 * comments and folding white space removed. Pure functions: no I/O, no
 * allocation, no global state, safe from any thread.
 *
 * Used by src/smtp for `sender_login` (the From: of a submitted message
 * must name only the authenticated user's addresses); meant for DMARC
 * (RFC 7489 3.1: the From domain) and `sendmail -t` (To/Cc/Bcc) too.
 *
 * SECURITY: the value is untrusted client text and the answer is used
 * for an anti-spoofing decision, so anything ambiguous is a syntax error
 * rather than a guess: unbalanced quotes, brackets or parentheses, a
 * missing '@', a display name with an unquoted '@', text after an
 * address other than CFWS and ',', NUL, other control characters, a CR
 * or LF that is not folding white space, ill-formed UTF-8, and the
 * limits below. The whole value is checked before the callback runs, so
 * the callback never sees an address of a value that is then refused.
 * Linear time and constant stack (no recursion) in the value's length.
 * STANDARDS: RFC 5322 3.2.1-3.2.5, 3.4, 3.4.1, 4.1, 4.4; RFC 6532 3.2;
 * RFC 6854 (groups in From:); RFC 3629 (UTF-8).
 */
#ifndef PETREL_MAILADDR_HDRADDR_H
#define PETREL_MAILADDR_HDRADDR_H

#include <stdbool.h>
#include <stddef.h>

/* More addresses than this in one value is a syntax error. */
#define MAILADDR_HDR_ADDRS_MAX		1000
/* Comments nested deeper than this are a syntax error. */
#define MAILADDR_HDR_COMMENT_DEPTH	50
/*
 * The longest addr-spec reported, in octets: RFC 5322 2.1.1's line limit.
 * An SMTP mailbox is far shorter (RFC 5321 4.5.3.1: 64 + 1 + 255); the
 * caller applies that limit if it wants it. Longer is a syntax error.
 */
#define MAILADDR_HDR_ADDR_MAX		998

/* mailaddr_header_parse() when the callback stopped the walk. */
#define MAILADDR_HDR_STOPPED		(-2)

/*
 * Called once per address, in order. addr is the addr-spec, "local@domain",
 * NUL-terminated at addr[len], and valid only during the call:
 *   - comments, folding white space and an obs-route ("<@a.test:u@b.test>")
 *     are removed; CFWS around the dots of a local part or domain (RFC 5322
 *     4.4 obs-local-part, obs-domain) too: "a . b@x . test" is "a.b@x.test";
 *   - a quoted local part keeps its quotes and quoted pairs as written,
 *     with only the CRLF of a fold inside it removed (its WSP is content):
 *     "\"john doe\"@x.test". It is not turned into a dot-atom even when it
 *     could be; mailaddr_addr_split() says whether it is quoted and
 *     mailaddr_localpart_unquote() (mailaddr.h) gives the mailbox name;
 *   - a domain literal keeps its brackets, without white space: "[192.0.2.1]";
 *   - case is kept; nothing is checked against RFC 5321 (domain syntax,
 *     lengths): that is the caller's policy.
 * addr never contains NUL, CR, LF or a control character, and contains
 * WSP only inside a quoted local part. Return 0 to go on, any other value
 * to stop the walk.
 */
typedef int (*mailaddr_hdr_cb)(void *arg, const char *addr, size_t len);

/*
 * Flags for mailaddr_header_parse().
 *
 * MAILADDR_HDR_STRICT also refuses what RFC 5322 allows but mail readers
 * show differently from what the address is, so that an authenticated
 * user cannot make their own address look like another's: an obs-route
 * ("<@bank.test:me@mine.test>", which some readers show as bank.test),
 * CFWS around the dots of a local part or domain ("me@mine (x) . test"),
 * and a comment holding '@', '<' or '>' ("me@mine.test (ceo@bank.test)").
 * Meant for `sender_login`; display names are not checked (a quoted
 * "ceo@bank.test" before <me@mine.test> is the caller's policy).
 */
enum mailaddr_hdr_flag {
	MAILADDR_HDR_STRICT = 1 << 0,
};

/*
 * Parse value[0..len) (need not be NUL-terminated; a NUL inside is an
 * error), the text after the colon of an address header, unfolded or not:
 * CRLF or a bare LF followed by WSP is folding white space, and one CRLF
 * or LF at the very end is ignored; any other CR or LF is an error.
 * Accepted: RFC 5322 address-list (mailboxes, name-addrs, groups, with
 * empty groups) with comments nested up to MAILADDR_HDR_COMMENT_DEPTH,
 * and from RFC 5322 4.4: obs-phrase ('.' in a display name), obs-route,
 * empty list elements (", ,"), CFWS around dots, obs-FWS (lines of only
 * WSP). Refused although RFC 5322 4.4 would allow them, because a reader
 * could take them two ways: a local part that mixes quoted strings with
 * dots ("\"a\".b@x"), quoted pairs and control characters in quoted strings,
 * comments and domain literals (obs-qp, obs-qtext, obs-ctext, obs-dtext),
 * white space between the characters of a domain literal, and a group
 * inside a group. flags is a set of enum mailaddr_hdr_flag.
 *
 * Returns the number of addresses (0 for an empty value, only empty
 * elements or only empty groups: RFC 5322 would refuse the first two, a
 * caller that needs a mailbox checks for 0), or -1 on a syntax error, with
 * *error_r (when error_r is not NULL) set to a static English phrase, and
 * then cb was never called. If cb returns non-zero, the walk stops there
 * and MAILADDR_HDR_STOPPED is returned. cb may be NULL: only check and
 * count.
 */
int mailaddr_header_parse(const char *value, size_t len, unsigned int flags,
    mailaddr_hdr_cb cb, void *arg, const char **error_r);

/* mailaddr_header_parse() without flags or error text. */
int mailaddr_header_addresses(const char *value, size_t len,
    mailaddr_hdr_cb cb, void *arg);

/*
 * Split addr[0..len), an addr-spec as mailaddr_header_parse() reports it,
 * at the '@' that ends its local part: the closing quote is followed by
 * the '@' for a quoted local part, else the first '@' (a domain literal
 * may hold more). Sets *local_len_r to the octets before that '@' (the
 * domain is the rest after it) and *quoted_r to whether the local part
 * is a quoted string. Returns false, setting nothing, if addr has no such
 * '@' or an empty local part or domain.
 */
bool mailaddr_addr_split(const char *addr, size_t len, size_t *local_len_r,
    bool *quoted_r);

#endif
