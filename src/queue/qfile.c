/*
 * qfile.c: encoding and parsing of queue files (docs/queue-format.md).
 *
 * Entry points: qfile_encode_header(), qfile_encode_tail(),
 * qfile_encode_state(), qfile_parse(), qfile_read_content().
 *
 * SECURITY: the parser reads files that only Petrel writes, but a crash,
 * a bad disk or a human can leave anything there, so it treats them as
 * untrusted: every length is checked against the file size and a cap
 * before anything is allocated or read, every record's CRC is checked, and
 * a file that does not follow the grammar exactly is rejected. It runs
 * with the daemon's (unprivileged) user.
 * STANDARDS: CRC-32 as in ISO 3309 / IEEE 802.3 (the zlib crc32()).
 * OWNERSHIP: strings put into the envelope are owned by it.
 */
#include "queue/qfile.h"

#include <sys/stat.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/util.h"

/*
 * CRC-32 by slicing-by-8 (eight bytes per step through eight tables):
 * several times faster than a byte at a time, and every message's bytes
 * pass through it when written and when read back.
 */
static uint32_t qfile_crc_table[8][256];
static pthread_once_t qfile_crc_once = PTHREAD_ONCE_INIT;

static void
qfile_crc_init(void)
{
	uint32_t c;
	unsigned int n, k;

	for (n = 0; n < 256; n++) {
		c = n;
		for (k = 0; k < 8; k++)
			c = (c & 1) ? 0xedb88320U ^ (c >> 1) : c >> 1;
		qfile_crc_table[0][n] = c;
	}
	for (n = 0; n < 256; n++) {
		c = qfile_crc_table[0][n];
		for (k = 1; k < 8; k++) {
			c = qfile_crc_table[0][c & 0xff] ^ (c >> 8);
			qfile_crc_table[k][n] = c;
		}
	}
}

uint32_t
qfile_crc32(uint32_t crc, const void *data, size_t len)
{
	const unsigned char *p = data;
	uint32_t lo, hi;

	pthread_once(&qfile_crc_once, qfile_crc_init);
	crc = ~crc;
	for (; len >= 8; p += 8, len -= 8) {
		/* Little-endian words whatever the host's byte order. */
		lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 |
		    (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
		hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 |
		    (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
		crc = qfile_crc_table[7][lo & 0xff] ^
		    qfile_crc_table[6][(lo >> 8) & 0xff] ^
		    qfile_crc_table[5][(lo >> 16) & 0xff] ^
		    qfile_crc_table[4][lo >> 24] ^
		    qfile_crc_table[3][hi & 0xff] ^
		    qfile_crc_table[2][(hi >> 8) & 0xff] ^
		    qfile_crc_table[1][(hi >> 16) & 0xff] ^
		    qfile_crc_table[0][hi >> 24];
	}
	while (len-- > 0)
		crc = qfile_crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* ---- Encoding ---- */

static void
put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static void
put_be64(unsigned char *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

static uint32_t
get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint64_t
get_be64(const unsigned char *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

static int
buf_put_u32(struct buf *b, uint32_t v)
{
	unsigned char tmp[4];

	put_be32(tmp, v);
	return buf_append(b, tmp, sizeof(tmp));
}

static int
buf_put_u64(struct buf *b, uint64_t v)
{
	unsigned char tmp[8];

	put_be64(tmp, v);
	return buf_append(b, tmp, sizeof(tmp));
}

/* A string: u32 length (QFILE_STR_NULL for NULL) and the bytes. */
static int
buf_put_str(struct buf *b, const char *s)
{
	size_t len;

	if (s == NULL)
		return buf_put_u32(b, QFILE_STR_NULL);
	len = strlen(s);
	if (len >= QFILE_RECORD_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	if (buf_put_u32(b, (uint32_t)len) == -1)
		return -1;
	return buf_append(b, s, len);
}

void
qfile_record_seal(unsigned char *rec, uint8_t type, size_t len)
{
	rec[0] = type;
	put_be32(rec + 1, (uint32_t)len);
	put_be32(rec + QFILE_REC_HDRLEN + len,
	    qfile_crc32(0, rec, QFILE_REC_HDRLEN + len));
}

int
qfile_record_append(struct buf *b, uint8_t type, const void *payload,
    size_t len)
{
	unsigned char hdr[QFILE_REC_HDRLEN], crc[QFILE_REC_CRCLEN];
	uint32_t c;

	if (len > QFILE_RECORD_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	hdr[0] = type;
	put_be32(hdr + 1, (uint32_t)len);
	c = qfile_crc32(0, hdr, sizeof(hdr));
	c = qfile_crc32(c, payload, len);
	put_be32(crc, c);
	if (buf_append(b, hdr, sizeof(hdr)) == -1 ||
	    buf_append(b, payload, len) == -1 ||
	    buf_append(b, crc, sizeof(crc)) == -1)
		return -1;
	return 0;
}

int
qfile_encode_header(struct buf *b, const char *id, uint64_t created)
{
	struct buf p;
	int r = -1;

	buf_init(&p, QFILE_RECORD_MAX);
	if (buf_append(&p, QFILE_MAGIC, QFILE_MAGIC_LEN) == -1 ||
	    buf_put_u32(&p, QFILE_VERSION) == -1 ||
	    buf_put_u64(&p, created) == -1 || buf_put_str(&p, id) == -1)
		goto fail;
	r = qfile_record_append(b, QFILE_REC_HEADER, p.data, p.len);
fail:
	buf_free(&p);
	return r;
}

size_t
qfile_state_reclen(uint32_t version)
{
	return version == 1 ? QFILE_STATE_RECLEN_V1 : QFILE_STATE_RECLEN;
}

/* Copy a string into a NUL-padded field of size bytes (at most size-1). */
static void
qfile_put_padded(unsigned char *p, size_t size, const char *s, size_t max)
{
	size_t n = strnlen(s, max);

	memset(p, 0, size);
	if (n > size - 1)
		n = size - 1;
	memcpy(p, s, n);
}

void
qfile_encode_state_version(unsigned char *rec, uint32_t version,
    uint32_t index, const struct envelope_rcpt *r)
{
	unsigned char *p = rec + QFILE_REC_HDRLEN;

	put_be32(p, index);
	put_be32(p + 4, (uint32_t)r->status);
	put_be32(p + 8, r->attempts);
	put_be64(p + 12, r->next_attempt);
	/* NUL-padded: the record is the same size whatever the reply. */
	if (version == 1) {
		qfile_put_padded(p + 20, QFILE_REPLY_MAX_V1, r->last_reply,
		    sizeof(r->last_reply));
		qfile_record_seal(rec, QFILE_REC_STATE, QFILE_STATE_LEN_V1);
		return;
	}
	qfile_put_padded(p + 20, QFILE_REPLY_MAX, r->last_reply,
	    sizeof(r->last_reply));
	put_be32(p + 20 + QFILE_REPLY_MAX, r->flags);
	put_be64(p + 24 + QFILE_REPLY_MAX, r->last_attempt);
	qfile_put_padded(p + 32 + QFILE_REPLY_MAX, QFILE_REMOTE_MAX,
	    r->remote_mta, sizeof(r->remote_mta));
	qfile_record_seal(rec, QFILE_REC_STATE, QFILE_STATE_LEN);
}

void
qfile_encode_state(unsigned char *rec, uint32_t index,
    const struct envelope_rcpt *r)
{
	qfile_encode_state_version(rec, QFILE_VERSION, index, r);
}

/* Every string docs/queue-format.md does not allow to be absent is set. */
static bool
qfile_envelope_is_complete(const struct envelope *env)
{
	size_t i;

	if (env->sender == NULL || env->client_addr == NULL ||
	    env->helo == NULL || env->proto == NULL)
		return false;
	for (i = 0; i < env->nrcpts; i++)
		if (env->rcpts[i].orig == NULL || env->rcpts[i].addr == NULL)
			return false;
	return true;
}

int
qfile_encode_tail(struct buf *b, const struct envelope *env,
    uint64_t tail_offset, uint64_t content_size)
{
	unsigned char state[QFILE_STATE_RECLEN], end[QFILE_END_LEN];
	struct buf p;
	uint64_t state_offset;
	size_t i, start = b->len;

	if (env->nrcpts > UINT32_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	/* What the parser would refuse is never written (nor acknowledged). */
	if (!qfile_envelope_is_complete(env)) {
		errno = EINVAL;
		return -1;
	}
	buf_init(&p, QFILE_RECORD_MAX);

	/* MAIL: the sender and every MAIL parameter. */
	if (buf_put_u32(&p, (uint32_t)env->body) == -1 ||
	    buf_put_u64(&p, env->size) == -1 ||
	    buf_put_u32(&p, env->smtputf8 ? 1 : 0) == -1 ||
	    buf_put_u32(&p, (uint32_t)env->ret) == -1 ||
	    buf_put_str(&p, env->sender) == -1 ||
	    buf_put_str(&p, env->envid) == -1 ||
	    buf_put_str(&p, env->auth) == -1 ||
	    qfile_record_append(b, QFILE_REC_MAIL, p.data, p.len) == -1)
		goto fail;

	/* CLIENT: where the message came from. */
	buf_reset(&p);
	if (buf_put_u64(&p, env->arrival) == -1 ||
	    buf_put_str(&p, env->client_addr) == -1 ||
	    buf_put_str(&p, env->client_name) == -1 ||
	    buf_put_str(&p, env->helo) == -1 ||
	    buf_put_str(&p, env->proto) == -1 ||
	    buf_put_str(&p, env->tls) == -1 ||
	    buf_put_str(&p, env->auth_user) == -1 ||
	    qfile_record_append(b, QFILE_REC_CLIENT, p.data, p.len) == -1)
		goto fail;

	/* PREPEND: header fields delivered in front of the content. */
	if (env->prepend != NULL) {
		buf_reset(&p);
		if (buf_put_str(&p, env->prepend) == -1 ||
		    qfile_record_append(b, QFILE_REC_PREPEND, p.data,
		    p.len) == -1)
			goto fail;
	}

	for (i = 0; i < env->nrcpts; i++) {
		const struct envelope_rcpt *r = &env->rcpts[i];

		buf_reset(&p);
		if (buf_put_u32(&p, (uint32_t)i) == -1 ||
		    buf_put_u32(&p, (uint32_t)r->kind) == -1 ||
		    buf_put_u32(&p, r->notify) == -1 ||
		    buf_put_str(&p, r->orig) == -1 ||
		    buf_put_str(&p, r->addr) == -1 ||
		    buf_put_str(&p, r->mailbox) == -1 ||
		    buf_put_str(&p, r->orcpt) == -1 ||
		    qfile_record_append(b, QFILE_REC_RCPT, p.data, p.len) == -1)
			goto fail;
	}

	/* The fixed-size states, contiguous, rewritten in place later. */
	state_offset = tail_offset + (b->len - start);
	for (i = 0; i < env->nrcpts; i++) {
		qfile_encode_state(state, (uint32_t)i, &env->rcpts[i]);
		if (buf_append(b, state, sizeof(state)) == -1)
			goto fail;
	}

	put_be64(end, content_size);
	put_be64(end + 8, tail_offset);
	put_be64(end + 16, state_offset);
	put_be32(end + 24, (uint32_t)env->nrcpts);
	if (qfile_record_append(b, QFILE_REC_END, end, sizeof(end)) == -1)
		goto fail;
	buf_free(&p);
	return 0;
fail:
	buf_free(&p);
	return -1;
}

/* ---- Parsing ---- */

/*
 * Reads go through a window of QREADER_WINDOW bytes: a small message's
 * whole file (header, envelope, state) costs one pread, not two per
 * record. Larger reads (a CONTENT record near 64 KiB) bypass it.
 */
#define QREADER_WINDOW	(16 * 1024)

struct qreader {
	int fd;
	uint64_t off;		/* next record */
	uint64_t size;		/* file size */
	unsigned char *buf;	/* payload + CRC of the current record */
	size_t bufsize;
	unsigned char *win;	/* file bytes [win_off, win_off + win_len) */
	uint64_t win_off;
	size_t win_len;
	const char *error;
};

struct qrec {
	uint8_t type;
	uint32_t len;
	uint64_t off;		/* of the record's first byte */
	const unsigned char *payload;	/* NULL when skipped */
	bool crc_ok;
};

static int qreader_pread_direct(struct qreader *, void *, size_t,
    uint64_t);

static int
qreader_pread(struct qreader *rd, void *dst, size_t len, uint64_t off)
{
	ssize_t n;

	if (len > QREADER_WINDOW / 2)
		return qreader_pread_direct(rd, dst, len, off);
	if (rd->win == NULL || off < rd->win_off ||
	    off + len > rd->win_off + rd->win_len) {
		if (rd->win == NULL)
			rd->win = xmalloc(QREADER_WINDOW);
		rd->win_off = off;
		rd->win_len = 0;
		while ((n = pread(rd->fd, rd->win, QREADER_WINDOW,
		    (off_t)off)) == -1 && errno == EINTR)
			;
		if (n == -1) {
			rd->error = "read error";
			return -1;
		}
		rd->win_len = (size_t)n;
		if (len > rd->win_len) {
			/* A short read: the rest the slow way (or the file
			 * shrank under us: reported there). */
			rd->win_len = 0;
			return qreader_pread_direct(rd, dst, len, off);
		}
	}
	memcpy(dst, rd->win + (off - rd->win_off), len);
	return 0;
}

static int
qreader_pread_direct(struct qreader *rd, void *dst, size_t len, uint64_t off)
{
	unsigned char *p = dst;
	ssize_t n;

	while (len > 0) {
		n = pread(rd->fd, p, len, (off_t)off);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			rd->error = "read error";
			return -1;
		}
		if (n == 0) {
			/* The file shrank under us. */
			rd->error = "truncated record";
			errno = EBADMSG;
			return -1;
		}
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static int
qreader_bad(struct qreader *rd, const char *why)
{
	rd->error = why;
	errno = EBADMSG;
	return -1;
}

/*
 * Read the record at rd->off. Returns 1 with *rec filled, 0 at end of file
 * (exactly at a record boundary), -1 on errors. With skip the payload of a
 * record is not read (CONTENT when not verifying).
 */
static int
qreader_next(struct qreader *rd, struct qrec *rec, bool skip)
{
	unsigned char hdr[QFILE_REC_HDRLEN];
	uint64_t total;
	uint32_t crc;

	if (rd->off == rd->size)
		return 0;
	if (rd->size - rd->off < QFILE_REC_OVERHEAD)
		return qreader_bad(rd, "truncated record");
	if (qreader_pread(rd, hdr, sizeof(hdr), rd->off) == -1)
		return -1;
	rec->type = hdr[0];
	rec->len = get_be32(hdr + 1);
	rec->off = rd->off;
	rec->payload = NULL;
	rec->crc_ok = false;
	if (rec->len > (rec->type == QFILE_REC_CONTENT ? QFILE_CONTENT_MAX :
	    QFILE_RECORD_MAX))
		return qreader_bad(rd, "record too long");
	total = QFILE_REC_OVERHEAD + (uint64_t)rec->len;
	if (rd->size - rd->off < total)
		return qreader_bad(rd, "truncated record");
	if (!skip) {
		if (rd->bufsize < rec->len + QFILE_REC_CRCLEN) {
			rd->bufsize = rec->len + QFILE_REC_CRCLEN;
			rd->buf = xrealloc(rd->buf, rd->bufsize);
		}
		if (qreader_pread(rd, rd->buf, rec->len + QFILE_REC_CRCLEN,
		    rd->off + QFILE_REC_HDRLEN) == -1)
			return -1;
		crc = qfile_crc32(0, hdr, sizeof(hdr));
		crc = qfile_crc32(crc, rd->buf, rec->len);
		rec->crc_ok = crc == get_be32(rd->buf + rec->len);
		rec->payload = rd->buf;
	}
	rd->off += total;
	return 1;
}

/* A cursor over one record's payload. */
struct qcur {
	const unsigned char *p;
	size_t left;
	bool bad;
};

static uint32_t
qcur_u32(struct qcur *c)
{
	uint32_t v;

	if (c->left < 4) {
		c->bad = true;
		return 0;
	}
	v = get_be32(c->p);
	c->p += 4;
	c->left -= 4;
	return v;
}

static uint64_t
qcur_u64(struct qcur *c)
{
	uint64_t v;

	if (c->left < 8) {
		c->bad = true;
		return 0;
	}
	v = get_be64(c->p);
	c->p += 8;
	c->left -= 8;
	return v;
}

/* A string; NULL for QFILE_STR_NULL or on error (c->bad set). */
static char *
qcur_str(struct qcur *c)
{
	uint32_t len;
	char *s;

	len = qcur_u32(c);
	if (c->bad || len == QFILE_STR_NULL)
		return NULL;
	if (len > c->left || memchr(c->p, '\0', len) != NULL) {
		c->bad = true;
		return NULL;
	}
	s = xstrndup((const char *)c->p, len);
	c->p += len;
	c->left -= len;
	return s;
}

static int
qfile_parse_header(struct qreader *rd, struct qfile_info *info)
{
	struct qrec rec;
	struct qcur c;
	char *id;
	int r;

	if ((r = qreader_next(rd, &rec, false)) == -1)
		return -1;
	if (r == 0)
		return qreader_bad(rd, "empty file");
	if (rec.type != QFILE_REC_HEADER || rec.len < QFILE_MAGIC_LEN ||
	    memcmp(rec.payload, QFILE_MAGIC, QFILE_MAGIC_LEN) != 0)
		return qreader_bad(rd, "not a queue file");
	if (!rec.crc_ok)
		return qreader_bad(rd, "bad CRC in HEADER record");
	c.p = rec.payload + QFILE_MAGIC_LEN;
	c.left = rec.len - QFILE_MAGIC_LEN;
	c.bad = false;
	info->version = qcur_u32(&c);
	if (!c.bad && (info->version < QFILE_VERSION_MIN ||
	    info->version > QFILE_VERSION))
		return qreader_bad(rd, "unsupported version");
	info->created = qcur_u64(&c);
	id = qcur_str(&c);
	if (c.bad || c.left != 0 || id == NULL ||
	    strlcpy(info->id, id, sizeof(info->id)) >= sizeof(info->id)) {
		free(id);
		return qreader_bad(rd, "bad HEADER record");
	}
	free(id);
	info->content_offset = rd->off;
	return 0;
}

static int
qfile_parse_mail(struct qreader *rd, const struct qrec *rec,
    struct envelope *env)
{
	struct qcur c = { rec->payload, rec->len, false };
	uint32_t v;

	env->body = (int)(int32_t)qcur_u32(&c);
	env->size = qcur_u64(&c);
	v = qcur_u32(&c);
	env->smtputf8 = v != 0;
	env->ret = (int)(int32_t)qcur_u32(&c);
	env->sender = qcur_str(&c);
	env->envid = qcur_str(&c);
	env->auth = qcur_str(&c);
	/* Absent (not "") is corrupt: delivery needs a Return-Path. */
	if (c.bad || c.left != 0 || v > 1 || env->sender == NULL)
		return qreader_bad(rd, "bad MAIL record");
	return 0;
}

static int
qfile_parse_client(struct qreader *rd, const struct qrec *rec,
    struct envelope *env)
{
	struct qcur c = { rec->payload, rec->len, false };

	env->arrival = qcur_u64(&c);
	env->client_addr = qcur_str(&c);
	env->client_name = qcur_str(&c);
	env->helo = qcur_str(&c);
	env->proto = qcur_str(&c);
	env->tls = qcur_str(&c);
	env->auth_user = qcur_str(&c);
	if (c.bad || c.left != 0 || env->client_addr == NULL ||
	    env->helo == NULL || env->proto == NULL)
		return qreader_bad(rd, "bad CLIENT record");
	return 0;
}

static int
qfile_parse_prepend(struct qreader *rd, const struct qrec *rec,
    struct envelope *env, struct qfile_info *info)
{
	struct qcur c = { rec->payload, rec->len, false };

	env->prepend = qcur_str(&c);
	if (c.bad || c.left != 0 || env->prepend == NULL)
		return qreader_bad(rd, "bad PREPEND record");
	info->prepend_size = strlen(env->prepend);
	return 0;
}

static int
qfile_parse_rcpt(struct qreader *rd, const struct qrec *rec,
    struct envelope *env)
{
	struct qcur c = { rec->payload, rec->len, false };
	struct envelope_rcpt *r;
	uint32_t index, kind, notify;
	char *orig, *addr, *mailbox, *orcpt;
	size_t i;
	int ret;

	index = qcur_u32(&c);
	kind = qcur_u32(&c);
	notify = qcur_u32(&c);
	orig = qcur_str(&c);
	addr = qcur_str(&c);
	mailbox = qcur_str(&c);
	orcpt = qcur_str(&c);
	if (c.bad || c.left != 0 || index != env->nrcpts ||
	    kind > RCPT_KIND_REMOTE || orig == NULL || addr == NULL) {
		ret = qreader_bad(rd, "bad RCPT record");
		goto out;
	}
	i = envelope_rcpt_add(env, "", "", NULL, (enum rcpt_kind)kind,
	    notify, NULL);
	r = &env->rcpts[i];
	/* Keep NULL as NULL: hand over the parsed strings directly. */
	free(r->orig);
	free(r->addr);
	r->orig = orig;
	r->addr = addr;
	r->mailbox = mailbox;
	r->orcpt = orcpt;
	return 0;
out:
	free(orig);
	free(addr);
	free(mailbox);
	free(orcpt);
	return ret;
}

static int
qfile_parse_state(struct qreader *rd, const struct qrec *rec, uint32_t i,
    struct envelope *env, struct qfile_info *info)
{
	struct envelope_rcpt *r = &env->rcpts[i];
	const unsigned char *p = rec->payload;
	uint32_t status;

	size_t replymax = info->version == 1 ? QFILE_REPLY_MAX_V1 :
	    QFILE_REPLY_MAX;

	if (rec->len != (info->version == 1 ? QFILE_STATE_LEN_V1 :
	    QFILE_STATE_LEN))
		return qreader_bad(rd, "bad STATE record");
	if (!rec->crc_ok) {
		/*
		 * A torn in-place update (spool_update_rcpts() crashed in
		 * the middle of a pwrite): we cannot know whether the
		 * delivery happened, so deliver again. A duplicate, never
		 * a loss.
		 */
		r->status = RCPT_STATUS_PENDING;
		r->attempts = 0;
		r->next_attempt = 0;
		r->last_reply[0] = '\0';
		r->flags = 0;
		r->last_attempt = 0;
		r->remote_mta[0] = '\0';
		info->torn_states++;
		return 0;
	}
	status = get_be32(p + 4);
	if (get_be32(p) != i || status > RCPT_STATUS_FAILED ||
	    memchr(p + 20, '\0', replymax) == NULL)
		return qreader_bad(rd, "bad STATE record");
	r->status = (enum rcpt_status)status;
	r->attempts = get_be32(p + 8);
	r->next_attempt = get_be64(p + 12);
	memcpy(r->last_reply, p + 20, replymax);
	r->flags = 0;
	r->last_attempt = 0;
	r->remote_mta[0] = '\0';
	if (info->version == 1)
		return 0;
	p += 20 + QFILE_REPLY_MAX;
	if ((get_be32(p) & ~(uint32_t)RCPT_FLAGS_ALL) != 0 ||
	    memchr(p + 12, '\0', QFILE_REMOTE_MAX) == NULL)
		return qreader_bad(rd, "bad STATE record");
	r->flags = get_be32(p);
	r->last_attempt = get_be64(p + 4);
	memcpy(r->remote_mta, p + 12, QFILE_REMOTE_MAX);
	return 0;
}

static int
qfile_parse_end(struct qreader *rd, const struct qrec *rec,
    const struct qfile_info *info)
{
	const unsigned char *p = rec->payload;

	if (rec->len != QFILE_END_LEN || !rec->crc_ok)
		return qreader_bad(rd, "bad END record");
	if (get_be64(p) != info->content_size ||
	    get_be64(p + 8) != info->envelope_offset ||
	    get_be64(p + 16) != info->state_offset ||
	    get_be32(p + 24) != info->nrcpts)
		return qreader_bad(rd, "END record does not match the file");
	if (rd->off != rd->size)
		return qreader_bad(rd, "data after END record");
	return 0;
}

static const char *
qfile_crc_error(uint8_t type)
{
	switch (type) {
	case QFILE_REC_HEADER:
		return "bad CRC in HEADER record";
	case QFILE_REC_CONTENT:
		return "bad CRC in CONTENT record";
	case QFILE_REC_MAIL:
		return "bad CRC in MAIL record";
	case QFILE_REC_CLIENT:
		return "bad CRC in CLIENT record";
	case QFILE_REC_RCPT:
		return "bad CRC in RCPT record";
	case QFILE_REC_STATE:
		return "bad CRC in STATE record";
	case QFILE_REC_END:
		return "bad CRC in END record";
	default:
		return "bad CRC";
	}
}

/*
 * Read the next record, which must exist and have type want (and a good
 * CRC unless want is STATE, whose CRC the caller judges).
 */
static int
qreader_expect(struct qreader *rd, struct qrec *rec, uint8_t want)
{
	int r;

	if ((r = qreader_next(rd, rec, false)) == -1)
		return -1;
	if (r == 0)
		return qreader_bad(rd, "no END record");
	if (rec->type != want) {
		if (rec->type == QFILE_REC_END)
			return qreader_bad(rd, "misplaced END record");
		return qreader_bad(rd, "unexpected record type");
	}
	if (want != QFILE_REC_STATE && !rec->crc_ok)
		return qreader_bad(rd, qfile_crc_error(rec->type));
	return 0;
}

/*
 * The grammar, strictly in this order:
 *   HEADER CONTENT* MAIL CLIENT [PREPEND] RCPT{n} STATE{n} END <end of file>
 * (PREPEND from version 3 on)
 */
static int
qfile_parse_records(struct qreader *rd, int flags, struct envelope *env,
    struct qfile_info *info)
{
	struct qrec rec;
	bool verify = (flags & QFILE_VERIFY_CONTENT) != 0;
	unsigned char type;
	uint32_t i;

	if (qfile_parse_header(rd, info) == -1)
		return -1;

	/* CONTENT*: peek at each type before deciding to read it. */
	for (;;) {
		if (rd->off == rd->size)
			return qreader_bad(rd, "no END record");
		if (qreader_pread(rd, &type, 1, rd->off) == -1)
			return -1;
		if (type != QFILE_REC_CONTENT)
			break;
		if (qreader_next(rd, &rec, !verify) != 1)
			return -1;
		if (verify && !rec.crc_ok)
			return qreader_bad(rd, "bad CRC in CONTENT record");
		info->content_size += rec.len;
	}

	info->envelope_offset = rd->off;
	if (qreader_expect(rd, &rec, QFILE_REC_MAIL) == -1 ||
	    qfile_parse_mail(rd, &rec, env) == -1)
		return -1;
	if (qreader_expect(rd, &rec, QFILE_REC_CLIENT) == -1 ||
	    qfile_parse_client(rd, &rec, env) == -1)
		return -1;
	/* Version 3: an optional PREPEND. */
	if (rd->off == rd->size)
		return qreader_bad(rd, "no END record");
	if (qreader_pread(rd, &type, 1, rd->off) == -1)
		return -1;
	if (type == QFILE_REC_PREPEND) {
		if (info->version < 3)
			return qreader_bad(rd, "PREPEND record before version 3");
		if (qreader_expect(rd, &rec, QFILE_REC_PREPEND) == -1 ||
		    qfile_parse_prepend(rd, &rec, env, info) == -1)
			return -1;
	}

	/* RCPT*, then as many STATE as there were RCPT. */
	for (;;) {
		if (rd->off == rd->size)
			return qreader_bad(rd, "no END record");
		if (qreader_pread(rd, &type, 1, rd->off) == -1)
			return -1;
		if (type != QFILE_REC_RCPT)
			break;
		/*
		 * Each RCPT needs a STATE record later in the file: stop
		 * before the recipients outgrow what the rest of the file
		 * can hold (millions of tiny RCPT records would otherwise
		 * cost ~300 bytes of memory each before the missing STATE
		 * records are noticed).
		 */
		if ((rd->size - rd->off) / qfile_state_reclen(info->version)
		    <= env->nrcpts)
			return qreader_bad(rd, "too many RCPT records");
		if (qreader_expect(rd, &rec, QFILE_REC_RCPT) == -1 ||
		    qfile_parse_rcpt(rd, &rec, env) == -1)
			return -1;
	}
	info->state_offset = rd->off;
	for (i = 0; i < env->nrcpts; i++) {
		if (qreader_expect(rd, &rec, QFILE_REC_STATE) == -1 ||
		    qfile_parse_state(rd, &rec, i, env, info) == -1)
			return -1;
	}
	info->nrcpts = (uint32_t)env->nrcpts;

	if (qreader_expect(rd, &rec, QFILE_REC_END) == -1)
		return -1;
	return qfile_parse_end(rd, &rec, info);
}

int
qfile_parse(int fd, int flags, struct envelope *env, struct qfile_info *info,
    const char **error_r)
{
	struct qreader rd;
	struct stat st;
	int r;

	memset(info, 0, sizeof(*info));
	memset(&rd, 0, sizeof(rd));
	rd.fd = fd;
	if (fstat(fd, &st) == -1) {
		*error_r = "read error";
		return -1;
	}
	rd.size = (uint64_t)st.st_size;
	info->file_size = rd.size;
	r = qfile_parse_records(&rd, flags, env, info);
	free(rd.buf);
	free(rd.win);
	if (r == -1) {
		int saved = errno;

		envelope_free(env);
		*error_r = rd.error != NULL ? rd.error : "read error";
		errno = saved;
	}
	return r;
}

int
qfile_read_content(int fd, const struct qfile_info *info,
    int (*cb)(void *, const char *, size_t), void *arg)
{
	struct qreader rd;
	struct qrec rec;
	uint64_t total = 0;
	int r = -1;

	memset(&rd, 0, sizeof(rd));
	rd.fd = fd;
	rd.off = info->content_offset;
	rd.size = info->envelope_offset;
	for (;;) {
		if ((r = qreader_next(&rd, &rec, false)) == -1)
			goto out;
		if (r == 0)
			break;
		if (rec.type != QFILE_REC_CONTENT || !rec.crc_ok) {
			r = qreader_bad(&rd, "bad CONTENT record");
			goto out;
		}
		total += rec.len;
		if (rec.len > 0 &&
		    (r = cb(arg, (const char *)rec.payload, rec.len)) != 0)
			goto out;
	}
	if (total != info->content_size)
		r = qreader_bad(&rd, "content size mismatch");
out:
	free(rd.buf);
	free(rd.win);
	return r;
}

struct qfile_content {
	struct qreader rd;
	uint64_t total;
	uint64_t expect;
	bool done;
};

struct qfile_content *
qfile_content_open(int fd, const struct qfile_info *info)
{
	struct qfile_content *it = xcalloc(1, sizeof(*it));

	it->rd.fd = fd;
	it->rd.off = info->content_offset;
	it->rd.size = info->envelope_offset;
	it->expect = info->content_size;
	return it;
}

int
qfile_content_next(struct qfile_content *it, const char **data, size_t *len)
{
	struct qrec rec;
	int r;

	for (;;) {
		if (it->done)
			return 0;
		if ((r = qreader_next(&it->rd, &rec, false)) == -1)
			return -1;
		if (r == 0) {
			it->done = true;
			if (it->total != it->expect)
				return qreader_bad(&it->rd,
				    "content size mismatch");
			return 0;
		}
		if (rec.type != QFILE_REC_CONTENT || !rec.crc_ok)
			return qreader_bad(&it->rd, "bad CONTENT record");
		it->total += rec.len;
		if (rec.len == 0)
			continue;
		*data = (const char *)rec.payload;
		*len = rec.len;
		return 1;
	}
}

void
qfile_content_close(struct qfile_content *it)
{
	if (it == NULL)
		return;
	free(it->rd.buf);
	free(it->rd.win);
	free(it);
}
