/*
 * dkim.c: `petrel dkim`, the administrator's DKIM tools (RFC 6376, RFC
 * 8463) over the library in src/msgauth.
 *
 *   petrel dkim keygen [-c FILE] --domain D --selector S --out FILE
 *                      [--type rsa|ed25519] [--bits N]
 *	Generate a signing key (RSA, 2048 bits by default, at least 1024;
 *	or Ed25519), write it as a PKCS#8 PEM file created 0600 (never over
 *	an existing file or through a symbolic link; fsync'd, and its
 *	directory too). Run as root, the file is given to the daemon's
 *	user (the configuration's `user`, petrel by default), which must
 *	read it again at every SIGHUP; a note on stderr says so. It prints
 *	on stdout the DNS record to publish:
 *	    S._domainkey.D. IN TXT "v=DKIM1; k=rsa; p=MIIB..." "..."
 *	(the text cut into quoted character-strings of at most 255 octets,
 *	as zone files need; for Ed25519 k=ed25519 and p= the raw 32-octet
 *	public key, RFC 8463 4) and a comment line with the matching
 *	configuration directive, "; petrel.conf: dkim_sign D S FILE".
 *
 *   petrel dkim sign --domain D --selector S --key FILE [--headers h1:h2]
 *	Read a message on stdin, sign it (relaxed/relaxed, t= now, h= the
 *	library's default set unless --headers gives the list, names
 *	repeated to oversign) and write the DKIM-Signature field followed by
 *	the message on stdout, as a signer passes it on. Lines ending in a
 *	bare LF are converted to CRLF first (a file edited on Unix is signed
 *	as it will travel over SMTP); the output always has CRLF line ends.
 *
 *   petrel dkim verify [-c FILE] [--dns HOST:PORT]...
 *	Read a message on stdin (bare LF converted to CRLF as for sign) and
 *	check its DKIM-Signature fields, at most the configuration's
 *	dkim_max_signatures (default 5) of them, the first ones top down.
 *	Every key record is looked up at once through Petrel's resolver
 *	(src/dns: the configuration's `dns` servers, or the --dns ones,
 *	which replace them). One line per signature on stdout:
 *	    dkim=pass header.d=example.org header.s=sel header.a=rsa-sha256
 *	    dkim=fail (body hash did not verify) header.d=... header.s=...
 *	Key lookups: one TXT record (its strings joined) is the key; several
 *	records are a permerror; NXDOMAIN or no TXT record is "permerror
 *	(no key for signature)", as in the daemon's Authentication-Results;
 *	a failed lookup is a temperror. A message without a
 *	signature prints "dkim=none". Fields past that many are not
 *	checked (a note on stderr says how many).
 *
 * Exit status: 0 done (verify: at least one signature passed); 1 failure
 * (verify: none passed; keygen: the file exists or cannot be written;
 * sign: no From field, bad key); 2 usage or configuration error (verify:
 * also a --dns or `dns` address the resolver refuses).
 *
 * Entry point: cmd_dkim().
 * SECURITY: runs as the administrator. verify parses untrusted messages
 * and DNS data through the library's bounded parsers; what it prints from
 * them (d=, s=) has every octet outside printable ASCII replaced by '?'.
 * Private key text and PEM output live in buffers wiped with
 * OPENSSL_cleanse. Input is capped at DKIM_CLI_MSG_MAX octets.
 * STANDARDS: RFC 6376 3.6.2 (key records in DNS TXT, strings joined),
 * 5 and 6 (signing, verifying), RFC 8463 (Ed25519), RFC 8301 (RSA at
 * least 1024 bits), RFC 8601 2.7.1 (result names).
 * OWNERSHIP: everything is freed before return.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "conf/conf.h"
#include "daemon/daemon.h"
#include "dns/dns.h"
#include "lib/base64.h"
#include "lib/buf.h"
#include "lib/util.h"
#include "msgauth/dkim.h"

#define DKIM_CLI_MAX_SIGS	20		/* dkim_max_signatures max */
#define DKIM_CLI_MSG_MAX	(64u << 20)	/* octets read from stdin */
#define DKIM_CLI_KEY_MAX	(64u << 10)	/* a private key file */
#define DKIM_CLI_DNS_MAX	16		/* --dns options */
/* libunbound gives up well before this; it only guards the loop. */
#define DKIM_CLI_DEADLINE_SEC	60

int cmd_dkim(int argc, char **argv);

static void
dkim_cli_usage(void)
{
	fprintf(stderr,
	    "usage: petrel dkim keygen [-c FILE] --domain D --selector S "
	    "--out FILE\n"
	    "                          [--type rsa|ed25519] [--bits N]\n"
	    "       petrel dkim sign --domain D --selector S --key FILE "
	    "[--headers h1:h2:...] < msg\n"
	    "       petrel dkim verify [-c FILE] [--dns HOST:PORT]... < msg\n");
}

/*
 * A domain name or selector as `dkim_sign` accepts it (conf.c): labels of
 * letters, digits and inner hyphens, separated by dots, at most
 * DKIM_DOMAIN_MAX octets; a final dot is dropped (in place). A key made
 * here is always one the configuration can name.
 */
static bool
dkim_cli_name_ok(char *s)
{
	size_t len = strlen(s), i, label = 0;

	if (len > 0 && s[len - 1] == '.')
		s[--len] = '\0';
	if (len == 0 || len > DKIM_DOMAIN_MAX)
		return false;
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (c == '-' && label == 0)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-'))
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0 && s[len - 1] != '-';
}

/* Print untrusted text with octets outside printable ASCII as '?'. */
static void
dkim_cli_print_safe(const char *s)
{
	for (; *s != '\0'; s++)
		putchar(*s > ' ' && *s < 0x7f ? *s : '?');
}

/*
 * Read all of fd into b (max fixed by the caller). Returns 0, or -1 with
 * a message printed.
 */
static int
dkim_cli_read_fd(int fd, struct buf *b, const char *what)
{
	char chunk[65536];
	ssize_t n;

	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n == 0)
			break;
		if (n == -1) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "petrel: dkim: reading %s: %s\n", what,
			    strerror(errno));
			OPENSSL_cleanse(chunk, sizeof(chunk));
			return -1;
		}
		if (buf_append(b, chunk, (size_t)n) == -1) {
			fprintf(stderr, "petrel: dkim: %s is larger than %zu "
			    "octets\n", what, b->max);
			OPENSSL_cleanse(chunk, sizeof(chunk));
			return -1;
		}
	}
	OPENSSL_cleanse(chunk, sizeof(chunk));
	return 0;
}

/*
 * The message on stdin in wire form: a LF not preceded by CR becomes CRLF.
 * Returns 0 with *out (buf_free it), or -1 after a message.
 */
static int
dkim_cli_read_message(struct buf *out)
{
	struct buf in;
	size_t i, start = 0;
	int rc = -1;

	buf_init(&in, DKIM_CLI_MSG_MAX);
	buf_init(out, DKIM_CLI_MSG_MAX + DKIM_CLI_MSG_MAX / 2);
	if (dkim_cli_read_fd(STDIN_FILENO, &in, "the message") == -1)
		goto done;
	for (i = 0; i < in.len; i++) {
		if (in.data[i] != '\n' || (i > 0 && in.data[i - 1] == '\r'))
			continue;
		if (buf_append(out, in.data + start, i - start) == -1 ||
		    buf_append(out, "\r\n", 2) == -1)
			goto toolong;
		start = i + 1;
	}
	if (in.len > start && buf_append(out, in.data + start,
	    in.len - start) == -1)
		goto toolong;
	rc = 0;
	goto done;
toolong:
	fprintf(stderr, "petrel: dkim: the message is too large\n");
done:
	buf_free(&in);
	return rc;
}

/*
 * keygen
 */

/* Write the PEM of pkey to a new file path, 0600. Returns 0 or -1. */
static int
dkim_cli_write_key(EVP_PKEY *pkey, const char *path, const struct passwd *owner)
{
	BIO *mem = NULL;
	char *pem, *copy = NULL;
	long pemlen;
	int fd, rc = -1;

	/* secmem: the buffer is wiped when it grows and when freed. */
	if ((mem = BIO_new(BIO_s_secmem())) == NULL ||
	    !PEM_write_bio_PrivateKey(mem, pkey, NULL, NULL, 0, NULL, NULL) ||
	    (pemlen = BIO_get_mem_data(mem, &pem)) <= 0) {
		fprintf(stderr, "petrel: dkim: cannot encode the key\n");
		goto done;
	}
	/*
	 * O_EXCL refuses an existing file (a key in use must never be
	 * replaced by accident), O_NOFOLLOW a symbolic link planted there.
	 */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd == -1) {
		fprintf(stderr, "petrel: dkim: %s: %s%s\n", path,
		    strerror(errno), errno == EEXIST ?
		    " (refusing to overwrite a key)" : "");
		goto done;
	}
	/* The umask may only have removed bits; make it exactly 0600. */
	if (fchmod(fd, 0600) == -1 || (owner != NULL &&
	    fchown(fd, owner->pw_uid, owner->pw_gid) == -1) ||
	    write_all(fd, pem, (size_t)pemlen) == -1 || fsync(fd) == -1) {
		fprintf(stderr, "petrel: dkim: writing %s: %s\n", path,
		    strerror(errno));
		close(fd);
		unlink(path);
		goto done;
	}
	if (close(fd) == -1) {
		fprintf(stderr, "petrel: dkim: writing %s: %s\n", path,
		    strerror(errno));
		unlink(path);
		goto done;
	}
	copy = xstrdup(path);
	if (fsync_dir(dirname(copy)) == -1)
		fprintf(stderr, "petrel: dkim: warning: fsync of the "
		    "directory of %s: %s\n", path, strerror(errno));
	rc = 0;
done:
	free(copy);
	if (mem != NULL) {
		if ((pemlen = BIO_get_mem_data(mem, &pem)) > 0)
			OPENSSL_cleanse(pem, (size_t)pemlen);
		BIO_free(mem);
	}
	return rc;
}

/* The p= value: base64 of the SPKI DER (RSA) or the raw key (Ed25519). */
static char *
dkim_cli_public_b64(EVP_PKEY *pkey, bool ed25519)
{
	unsigned char raw[32], *der = NULL;
	size_t rawlen = sizeof(raw);
	char *out;
	int len;

	if (ed25519) {
		if (!EVP_PKEY_get_raw_public_key(pkey, raw, &rawlen) ||
		    rawlen != sizeof(raw))
			return NULL;
		out = xmalloc(BASE64_ENCODED_SIZE(rawlen));
		base64_encode(raw, rawlen, out, BASE64_ENCODED_SIZE(rawlen));
		return out;
	}
	if ((len = i2d_PUBKEY(pkey, &der)) <= 0)
		return NULL;
	out = xmalloc(BASE64_ENCODED_SIZE((size_t)len));
	base64_encode(der, (size_t)len, out, BASE64_ENCODED_SIZE((size_t)len));
	OPENSSL_free(der);
	return out;
}

static EVP_PKEY *
dkim_cli_generate(bool ed25519, unsigned int bits)
{
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *pkey = NULL;

	ctx = EVP_PKEY_CTX_new_from_name(NULL, ed25519 ? "ED25519" : "RSA",
	    NULL);
	if (ctx == NULL || EVP_PKEY_keygen_init(ctx) <= 0 ||
	    (!ed25519 && EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, (int)bits) <=
	    0) || EVP_PKEY_keygen(ctx, &pkey) <= 0)
		pkey = NULL;
	EVP_PKEY_CTX_free(ctx);
	return pkey;
}

static void dkim_cli_conf_error(void *, const char *);

/*
 * As root: the daemon's user, from the configuration (conf_locate rules),
 * into *owner_r; NULL (the key stays root's, with a warning) when that
 * user does not exist or is root. -1 when the configuration is broken.
 */
static int
dkim_cli_key_owner(const char *conf_path, struct passwd **owner_r)
{
	const char *source, *path;
	struct conf *c;
	struct passwd *pw;

	*owner_r = NULL;
	path = conf_locate(conf_path, &source);
	c = path != NULL ? conf_load(path, dkim_cli_conf_error, NULL) :
	    conf_default();
	if (c == NULL)
		return -1;
	pw = getpwnam(c->user);
	if (pw == NULL)
		fprintf(stderr, "petrel: dkim: warning: the daemon's user %s "
		    "does not exist: the key stays root's; the daemon's user "
		    "must be able to read it\n", c->user);
	else if (pw->pw_uid != 0)
		*owner_r = pw;
	conf_free(c);
	return 0;
}

static int
dkim_cli_keygen(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "domain", required_argument, NULL, 'd' },
		{ "selector", required_argument, NULL, 's' },
		{ "out", required_argument, NULL, 'o' },
		{ "type", required_argument, NULL, 't' },
		{ "bits", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 }
	};
	char *domain = NULL, *selector = NULL;
	const char *out = NULL, *type = "rsa", *bits_arg = NULL, *why;
	const char *conf_path = NULL;
	struct passwd *owner = NULL;
	char record[1024 + 8192], real[PATH_MAX];
	uint64_t bits = 2048;
	EVP_PKEY *pkey = NULL;
	char *p = NULL;
	bool ed25519;
	size_t len, off;
	int ch, rc = 2;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			conf_path = optarg;
			break;
		case 'd':
			domain = optarg;
			break;
		case 's':
			selector = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 't':
			type = optarg;
			break;
		case 'b':
			bits_arg = optarg;
			break;
		default:
			dkim_cli_usage();
			return 2;
		}
	}
	if (optind != argc || domain == NULL || selector == NULL ||
	    out == NULL) {
		dkim_cli_usage();
		return 2;
	}
	if (!dkim_cli_name_ok(domain) || !dkim_cli_name_ok(selector)) {
		fprintf(stderr, "petrel: dkim: invalid domain or selector\n");
		return 2;
	}
	if (strcmp(type, "rsa") == 0)
		ed25519 = false;
	else if (strcmp(type, "ed25519") == 0)
		ed25519 = true;
	else {
		fprintf(stderr, "petrel: dkim: --type must be rsa or "
		    "ed25519\n");
		return 2;
	}
	if (bits_arg != NULL) {
		if (ed25519) {
			fprintf(stderr, "petrel: dkim: --bits is for RSA "
			    "keys\n");
			return 2;
		}
		/* RFC 8301 3.2: at least 1024; more than verifiers accept
		 * would make a key nobody can use. */
		if (parse_u64(bits_arg, DKIM_RSA_MIN_BITS, DKIM_RSA_MAX_BITS,
		    &bits, &why) == -1) {
			fprintf(stderr, "petrel: dkim: --bits %s: %s (%d to "
			    "%d)\n", bits_arg, why, DKIM_RSA_MIN_BITS,
			    DKIM_RSA_MAX_BITS);
			return 2;
		}
	}
	if (geteuid() == 0 && dkim_cli_key_owner(conf_path, &owner) == -1)
		return 2;
	if ((pkey = dkim_cli_generate(ed25519, (unsigned int)bits)) == NULL) {
		fprintf(stderr, "petrel: dkim: key generation failed\n");
		return 1;
	}
	rc = 1;
	if ((p = dkim_cli_public_b64(pkey, ed25519)) == NULL) {
		fprintf(stderr, "petrel: dkim: cannot encode the public "
		    "key\n");
		goto done;
	}
	if (dkim_cli_write_key(pkey, out, owner) == -1)
		goto done;
	if (owner != NULL)
		fprintf(stderr, "petrel: dkim: %s belongs to user %s (the "
		    "daemon's user, who reads it at start and at every "
		    "reload), mode 0600\n", out, owner->pw_name);
	if ((size_t)snprintf(record, sizeof(record), "v=DKIM1; k=%s; p=%s",
	    ed25519 ? "ed25519" : "rsa", p) >= sizeof(record)) {
		fprintf(stderr, "petrel: dkim: record too long\n");
		goto done;
	}
	/*
	 * RFC 1035 3.3.14: a TXT record is character-strings of at most 255
	 * octets; RFC 6376 3.6.2.2 joins them. The text holds no '"' or '\'.
	 */
	printf("%s._domainkey.%s. IN TXT", selector, domain);
	len = strlen(record);
	for (off = 0; off < len; off += 255)
		printf(" \"%.*s\"", (int)(len - off > 255 ? 255 : len - off),
		    record + off);
	printf("\n; petrel.conf: dkim_sign %s %s %s\n", domain, selector,
	    realpath(out, real) != NULL ? real : out);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "petrel: dkim: writing the record failed\n");
		goto done;
	}
	rc = 0;
done:
	free(p);
	EVP_PKEY_free(pkey);
	return rc;
}

/*
 * sign
 */

/* RFC 5322 2.2 field name: printable ASCII but ':', here also not ';'. */
static bool
dkim_cli_field_name_ok(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (*s <= ' ' || *s >= 0x7f || *s == ':' || *s == ';')
			return false;
	return true;
}

/*
 * The key file, read into one buffer of fixed size (no realloc leaves a
 * copy of the key behind), wiped after parsing.
 */
static struct dkim_privkey *
dkim_cli_load_key(const char *path)
{
	struct dkim_privkey *k = NULL;
	const char *why;
	char *text;
	size_t len = 0;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		fprintf(stderr, "petrel: dkim: %s: %s\n", path,
		    strerror(errno));
		return NULL;
	}
	text = xmalloc(DKIM_CLI_KEY_MAX + 1);
	for (;;) {
		n = read(fd, text + len, DKIM_CLI_KEY_MAX + 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len > DKIM_CLI_KEY_MAX)
			break;
	}
	if (n == -1)
		fprintf(stderr, "petrel: dkim: %s: %s\n", path,
		    strerror(errno));
	else if (len > DKIM_CLI_KEY_MAX)
		fprintf(stderr, "petrel: dkim: %s: larger than %u octets\n",
		    path, DKIM_CLI_KEY_MAX);
	else if ((k = dkim_privkey_load(text, len, &why)) == NULL)
		fprintf(stderr, "petrel: dkim: %s: %s\n", path, why);
	close(fd);
	OPENSSL_cleanse(text, DKIM_CLI_KEY_MAX + 1);
	free(text);
	return k;
}

static int
dkim_cli_sign(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "domain", required_argument, NULL, 'd' },
		{ "selector", required_argument, NULL, 's' },
		{ "key", required_argument, NULL, 'k' },
		{ "headers", required_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 }
	};
	char *domain = NULL, *selector = NULL, *hlist = NULL, *field = NULL;
	const char *keypath = NULL, *why;
	const char *names[DKIM_SIG_HDRS_MAX];
	struct dkim_sign_opts o;
	struct dkim_privkey *key = NULL;
	struct buf msg;
	size_t nnames = 0;
	char *s, *colon;
	int ch, rc = 2;

	memset(&msg, 0, sizeof(msg));
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			domain = optarg;
			break;
		case 's':
			selector = optarg;
			break;
		case 'k':
			keypath = optarg;
			break;
		case 'H':
			hlist = optarg;
			break;
		default:
			dkim_cli_usage();
			return 2;
		}
	}
	if (optind != argc || domain == NULL || selector == NULL ||
	    keypath == NULL) {
		dkim_cli_usage();
		return 2;
	}
	if (!dkim_cli_name_ok(domain) || !dkim_cli_name_ok(selector)) {
		fprintf(stderr, "petrel: dkim: invalid domain or selector\n");
		return 2;
	}
	if (hlist != NULL) {
		/* Split in place: "from:to:subject". */
		for (s = hlist; ; s = colon + 1) {
			if ((colon = strchr(s, ':')) != NULL)
				*colon = '\0';
			if (!dkim_cli_field_name_ok(s) ||
			    nnames == DKIM_SIG_HDRS_MAX) {
				fprintf(stderr, "petrel: dkim: invalid "
				    "--headers list\n");
				return 2;
			}
			names[nnames++] = s;
			if (colon == NULL)
				break;
		}
	}
	rc = 1;
	if ((key = dkim_cli_load_key(keypath)) == NULL)
		goto done;
	if (dkim_cli_read_message(&msg) == -1)
		goto done;
	dkim_sign_opts_init(&o, domain, selector);
	if (nnames > 0) {
		o.headers = names;
		o.nheaders = nnames;
	}
	if ((field = dkim_sign(buf_str(&msg), msg.len, key, &o, &why)) ==
	    NULL) {
		fprintf(stderr, "petrel: dkim: cannot sign: %s\n", why);
		goto done;
	}
	if (fwrite(field, 1, strlen(field), stdout) != strlen(field) ||
	    fwrite(buf_str(&msg), 1, msg.len, stdout) != msg.len ||
	    fflush(stdout) == EOF) {
		fprintf(stderr, "petrel: dkim: writing the message failed\n");
		goto done;
	}
	rc = 0;
done:
	free(field);
	buf_free(&msg);
	dkim_privkey_free(key);
	return rc;
}

/*
 * verify
 */

struct dkim_cli_sig {
	struct dkim_sig *sig;		/* NULL: unparsable */
	enum dkim_result result;	/* final, or NONE while pending */
	const char *reason;		/* static text, or NULL */
	char *record;			/* the key record, once found */
	size_t recordlen;
	uint64_t query;			/* pending DNS request, or 0 */
	struct dkim_cli_verify *v;
};

struct dkim_cli_verify {
	struct event_base *base;
	struct dkim_cli_sig sigs[DKIM_CLI_MAX_SIGS];
	size_t nsigs;
	size_t pending;
	bool timed_out;
};

static void
dkim_cli_key_answer(void *arg, const struct dns_answer *a)
{
	struct dkim_cli_sig *s = arg;

	s->query = 0;
	switch (a->status) {
	case DNS_OK:
		/* RFC 6376 3.6.2.2: strings of a record are joined (the
		 * resolver did); more than one record is ambiguous. */
		if (a->n != 1) {
			s->result = DKIM_RESULT_PERMERROR;
			s->reason = "several key records";
			break;
		}
		s->record = xmalloc(a->txt[0].len + 1);
		memcpy(s->record, a->txt[0].data, a->txt[0].len);
		s->record[a->txt[0].len] = '\0';
		s->recordlen = a->txt[0].len;
		break;
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		/*
		 * RFC 6376 6.1.2 step 3: no key is PERMFAIL; RFC 8601
		 * 2.7.1 calls an error that cannot be recovered from
		 * "permerror" (a failure there means a signature that was
		 * checked). The daemon says the same.
		 */
		s->result = dkim_reason_result(DKIM_KEY_NOT_FOUND);
		s->reason = dkim_reason_str(DKIM_KEY_NOT_FOUND);
		break;
	case DNS_TEMPFAIL:
		s->result = DKIM_RESULT_TEMPERROR;
		s->reason = dkim_reason_str(DKIM_KEY_TEMPFAIL);
		break;
	case DNS_PERMFAIL:
		s->result = DKIM_RESULT_PERMERROR;
		s->reason = "key record unusable";
		break;
	}
	if (--s->v->pending == 0)
		event_base_loopbreak(s->v->base);
}

static void
dkim_cli_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct dkim_cli_verify *v = arg;

	(void)fd;
	(void)what;
	v->timed_out = true;
	event_base_loopbreak(v->base);
}

/*
 * Look up every parsed signature's key. Returns 0, or -1 (printed) when
 * the resolver cannot be set up (a bad --dns or `dns` address).
 */
static int
dkim_cli_lookup(struct dkim_cli_verify *v, const struct conf *c,
    const char *const *servers, size_t nservers)
{
	struct dns *d = NULL;
	struct event *deadline = NULL;
	struct timeval tv = { DKIM_CLI_DEADLINE_SEC, 0 };
	char name[DNS_NAME_MAX], err[256];
	size_t i;
	int rc = -1;

	if ((v->base = event_base_new()) == NULL) {
		fprintf(stderr, "petrel: dkim: event_base_new failed\n");
		return -1;
	}
	d = daemon_dns_new(v->base, c, servers, nservers, err, sizeof(err));
	if (d == NULL) {
		fprintf(stderr, "petrel: dkim: dns: %s\n", err);
		goto done;
	}
	for (i = 0; i < v->nsigs; i++) {
		struct dkim_cli_sig *s = &v->sigs[i];

		if (s->sig == NULL)
			continue;
		if (dkim_key_query_name(s->sig, name, sizeof(name)) == -1) {
			s->result = DKIM_RESULT_PERMERROR;
			s->reason = "key name too long";
			continue;
		}
		v->pending++;
		s->query = dns_query(d, name, DNS_TYPE_TXT, dkim_cli_key_answer,
		    s);
	}
	if (v->pending > 0) {
		deadline = evtimer_new(v->base, dkim_cli_deadline, v);
		if (deadline == NULL || evtimer_add(deadline, &tv) == -1) {
			fprintf(stderr, "petrel: dkim: cannot set a timer\n");
			goto done;
		}
		while (v->pending > 0 && !v->timed_out)
			if (event_base_loop(v->base, EVLOOP_ONCE) == -1)
				break;
	}
	/* Whatever is still pending timed out: cancel it, temperror. */
	for (i = 0; i < v->nsigs; i++) {
		struct dkim_cli_sig *s = &v->sigs[i];

		if (s->query == 0)
			continue;
		dns_cancel(d, s->query);
		s->query = 0;
		s->result = DKIM_RESULT_TEMPERROR;
		s->reason = dkim_reason_str(DKIM_KEY_TEMPFAIL);
	}
	rc = 0;
done:
	if (deadline != NULL)
		event_free(deadline);
	dns_free(d);
	event_base_free(v->base);
	v->base = NULL;
	return rc;
}

static void
dkim_cli_conf_error(void *arg, const char *msg)
{
	(void)arg;
	fprintf(stderr, "petrel: %s\n", msg);
}

static void
dkim_cli_print_result(const struct dkim_cli_sig *s)
{
	printf("dkim=%s", dkim_result_str(s->result));
	if (s->reason != NULL)
		printf(" (%s)", s->reason);
	if (s->sig != NULL) {
		printf(" header.d=");
		dkim_cli_print_safe(s->sig->domain);
		printf(" header.s=");
		dkim_cli_print_safe(s->sig->selector);
		printf(" header.a=%s", dkim_alg_str(s->sig->alg));
	}
	putchar('\n');
}

static int
dkim_cli_verify(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "dns", required_argument, NULL, 'D' },
		{ NULL, 0, NULL, 0 }
	};
	const char *conf_path = NULL, *path, *source;
	const char *servers[DKIM_CLI_DNS_MAX];
	struct dkim_cli_verify v;
	struct dkim_verify_opts vo;
	struct dkim_verdict verdict;
	struct dkim_msg m;
	struct dkim_key *key;
	struct conf *c = NULL;
	struct buf msg;
	enum dkim_reason reason;
	size_t nservers = 0, skipped = 0, max, i;
	bool passed = false;
	int ch, rc = 2;

	memset(&v, 0, sizeof(v));
	memset(&m, 0, sizeof(m));
	memset(&msg, 0, sizeof(msg));
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			conf_path = optarg;
			break;
		case 'D':
			if (nservers == DKIM_CLI_DNS_MAX) {
				fprintf(stderr, "petrel: dkim: too many "
				    "--dns\n");
				return 2;
			}
			servers[nservers++] = optarg;
			break;
		default:
			dkim_cli_usage();
			return 2;
		}
	}
	if (optind != argc) {
		dkim_cli_usage();
		return 2;
	}
	path = conf_locate(conf_path, &source);
	c = path != NULL ? conf_load(path, dkim_cli_conf_error, NULL) :
	    conf_default();
	if (c == NULL)
		return 2;
	max = c->dkim_max_signatures;
	if (max < 1 || max > DKIM_CLI_MAX_SIGS)
		max = max < 1 ? 1 : DKIM_CLI_MAX_SIGS;
	rc = 1;
	if (dkim_cli_read_message(&msg) == -1)
		goto done;
	if (dkim_msg_parse(buf_str(&msg), msg.len, &m, &reason) == -1) {
		fprintf(stderr, "petrel: dkim: %s\n", dkim_reason_str(reason));
		goto done;
	}
	for (i = 0; i < m.nhdrs; i++) {
		struct dkim_cli_sig *s;

		if (!dkim_hdr_is(&m.hdrs[i], "DKIM-Signature"))
			continue;
		if (v.nsigs == max) {
			skipped++;
			continue;
		}
		s = &v.sigs[v.nsigs++];
		s->v = &v;
		if (dkim_sig_parse(m.hdrs[i].raw, m.hdrs[i].rawlen, &s->sig,
		    &reason) == -1) {
			s->sig = NULL;
			s->result = dkim_reason_result(reason);
			s->reason = dkim_reason_str(reason);
		}
	}
	if (v.nsigs == 0) {
		printf("dkim=none\n");
		goto done;
	}
	if (skipped > 0)
		fprintf(stderr, "petrel: dkim: %zu more DKIM-Signature "
		    "field%s not checked (at most %zu)\n", skipped,
		    skipped == 1 ? "" : "s", max);
	if (dkim_cli_lookup(&v, c, servers, nservers) == -1) {
		rc = 2;
		goto done;
	}
	memset(&vo, 0, sizeof(vo));
	vo.now = (int64_t)time(NULL);
	for (i = 0; i < v.nsigs; i++) {
		struct dkim_cli_sig *s = &v.sigs[i];

		if (s->record != NULL) {
			if (dkim_key_parse(s->record, s->recordlen, &key,
			    &reason) == -1) {
				s->result = dkim_reason_result(reason);
				s->reason = dkim_reason_str(reason);
			} else {
				if (dkim_verify(&m, s->sig, key, &vo,
				    &verdict) == 0) {
					s->result = DKIM_RESULT_PASS;
					s->reason = dkim_pass_note(&verdict);
					passed = true;
				} else {
					s->result = verdict.result;
					s->reason = dkim_reason_str(
					    verdict.reason);
				}
				dkim_key_free(key);
			}
		}
		dkim_cli_print_result(s);
	}
	if (fflush(stdout) == EOF)
		goto done;
	rc = passed ? 0 : 1;
done:
	for (i = 0; i < v.nsigs; i++) {
		dkim_sig_free(v.sigs[i].sig);
		free(v.sigs[i].record);
	}
	dkim_msg_free(&m);
	buf_free(&msg);
	conf_free(c);
	return rc;
}

int
cmd_dkim(int argc, char **argv)
{
	if (argc < 2) {
		dkim_cli_usage();
		return 2;
	}
	if (strcmp(argv[1], "keygen") == 0)
		return dkim_cli_keygen(argc - 1, argv + 1);
	if (strcmp(argv[1], "sign") == 0)
		return dkim_cli_sign(argc - 1, argv + 1);
	if (strcmp(argv[1], "verify") == 0)
		return dkim_cli_verify(argc - 1, argv + 1);
	fprintf(stderr, "petrel: unknown dkim command \"%s\"\n", argv[1]);
	dkim_cli_usage();
	return 2;
}
