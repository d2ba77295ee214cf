/*
 * mailaddr.h: the RFC 5321 mailbox grammar, with RFC 6531 UTF-8: character
 * classes, scanners for the pieces of a mailbox (Dot-string,
 * Quoted-string, Domain, address literal), the unquoting of a local part,
 * and the RFC limits. Pure functions over NUL-terminated strings: no I/O,
 * no allocation, no global state, safe from any thread.
 *
 * Shared by src/smtp (paths in MAIL and RCPT, the HELO argument) and
 * src/policy (alias targets), which sits below smtp and so cannot call
 * its parser. What to do with a mailbox (replies, error messages, case
 * folding, which limits apply to what) stays with the caller.
 *
 * SECURITY: callers feed untrusted network text. Every scanner reads only
 * up to the terminating NUL (a multi-octet look-ahead stops at a NUL,
 * which matches nothing) and writes nothing; mailaddr_localpart_unquote()
 * never writes past outsize.
 * STANDARDS: RFC 5321 4.1.2 (Dot-string, Quoted-string, Domain), 4.1.3
 * (address literals), 4.5.3.1 (limits); RFC 5322 3.2.3 (atext); RFC 1035
 * 2.3.4 (label length); RFC 6531 3.3 (UTF-8 in atext, qtext, U-labels).
 */
#ifndef PETREL_MAILADDR_MAILADDR_H
#define PETREL_MAILADDR_MAILADDR_H

#include <stdbool.h>
#include <stddef.h>

/* RFC 5321 4.5.3.1.1-3 and RFC 1035 2.3.4 limits, in octets. */
#define MAILADDR_LOCALPART_MAX	64	/* local part */
#define MAILADDR_DOMAIN_MAX	255	/* domain */
#define MAILADDR_PATH_MAX	256	/* path, '<' to '>' included */
#define MAILADDR_LABEL_MAX	63	/* one ASCII label of a domain */

/* Flags for the scanners. */
enum mailaddr_flag {
	/*
	 * Accept well-formed UTF8-non-ascii sequences (RFC 6531 3.3) in
	 * atext, qtext and domain labels. Without it every octet above 0x7f
	 * ends the construct like any other octet outside the grammar.
	 */
	MAILADDR_UTF8 = 1 << 0,
	/*
	 * Domains only: accept '_' in labels, as Postfix's valid_hostname()
	 * does for HELO (Windows clients announce NetBIOS names).
	 */
	MAILADDR_UNDERSCORE = 1 << 1,
};

/* RFC 5321 Let-dig: an ASCII letter or digit. */
bool mailaddr_is_letdig(unsigned char c);

/* RFC 5322 3.2.3 atext, its ASCII part (never true for NUL). */
bool mailaddr_is_atext(unsigned char c);

/*
 * The scanners below take p, a pointer into a NUL-terminated string at
 * the first octet of the construct, and return a pointer just past the
 * longest construct that starts there, or NULL if none does. They do not
 * look at what follows: a caller that wants the whole string checks that
 * the result points at the NUL. flags is a set of enum mailaddr_flag.
 * When utf8_r is not NULL, *utf8_r is set to true if a UTF8-non-ascii
 * sequence was accepted and is otherwise left alone (never set to false),
 * so one flag can collect a whole path; after a NULL return its value
 * says nothing. A bad_r is written only when the scanner returns NULL.
 */

/*
 * RFC 5321 Dot-string = Atom *("." Atom), Atom = 1*atext. On NULL, if
 * bad_r is not NULL, *bad_r points at the start of the Atom that is empty:
 * p itself, or the octet after a '.'.
 */
const char *mailaddr_scan_dot_string(const char *p, unsigned int flags,
    bool *utf8_r, const char **bad_r);

/*
 * RFC 5321 Quoted-string = DQUOTE *QcontentSMTP DQUOTE, qtextSMTP
 * %d32-33 / %d35-91 / %d93-126, quoted-pairSMTP "\" %d32-126. Returns a
 * pointer just past the closing quote. On NULL, if bad_r is not NULL,
 * *bad_r points at the octet that broke the grammar: p itself if p[0] is
 * not '"', the NUL of an unterminated string, the '\' of a bad quoted
 * pair (also one followed by the NUL), or an octet that is not qtextSMTP
 * (nor well-formed UTF-8 with MAILADDR_UTF8).
 */
const char *mailaddr_scan_quoted_string(const char *p, unsigned int flags,
    bool *utf8_r, const char **bad_r);

/*
 * RFC 5321 Domain = sub-domain *("." sub-domain), sub-domain = Let-dig
 * [Ldh-str]: labels of letters, digits and inner hyphens ('_' too with
 * MAILADDR_UNDERSCORE), or U-labels with MAILADDR_UTF8. An ASCII label
 * is at most MAILADDR_LABEL_MAX octets; a label with UTF-8 is not
 * length-checked (its limit applies to its A-label, not computed here).
 * The domain's total length is the caller's to check.
 */
const char *mailaddr_scan_domain(const char *p, unsigned int flags,
    bool *utf8_r);

/*
 * RFC 5321 4.1.3 address-literal: "[" IPv4-address-literal "]" or
 * "[IPv6:" IPv6-addr "]" ("IPv6:" in any case), both checked with
 * inet_pton(), which refuses IPv4 octets with leading zeros (a stricter
 * Snum that avoids octal ambiguity). A General-address-literal
 * "[tag:content]" is refused: we could never deliver to one.
 */
const char *mailaddr_scan_address_literal(const char *p);

/*
 * The right side of a mailbox: an address literal if p[0] is '[', else
 * a Domain as mailaddr_scan_domain(p, flags, utf8_r) scans it.
 */
const char *mailaddr_scan_domain_or_literal(const char *p,
    unsigned int flags, bool *utf8_r);

/*
 * Copy the local part lp[0..len) (a Dot-string, or a Quoted-string with
 * its quotes, or a prefix of either; validated by the caller) into out
 * as a mailbox name: the quotes and the backslash of each quoted pair
 * removed, case kept, NUL-terminated. A quoted local part ends at its
 * closing quote, whatever follows within len. Returns 0, or -1 with out
 * set to "" (when outsize > 0) if the result needs more than outsize - 1
 * octets.
 */
int mailaddr_localpart_unquote(const char *lp, size_t len, char *out,
    size_t outsize);

#endif
