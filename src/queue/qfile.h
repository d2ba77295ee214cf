/*
 * qfile.h: the queue file format (private to src/queue): record encoding,
 * CRC32 and the parser. docs/queue-format.md is the specification; the
 * constants here must match it.
 *
 * A record is type (1 byte) | length (4 bytes, big-endian) | payload |
 * CRC32 (4 bytes, big-endian) of type, length and payload.
 *
 * THREADS: everything here is reentrant; no shared state except the CRC
 * table, built once.
 */
#ifndef PETREL_QUEUE_QFILE_H
#define PETREL_QUEUE_QFILE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "queue/envelope.h"

#define QFILE_MAGIC		"PETRELQF"	/* 8 bytes, no NUL stored */
#define QFILE_MAGIC_LEN		8
#define QFILE_VERSION		4	/* written */
#define QFILE_VERSION_MIN	1	/* oldest still read */

#define QFILE_REC_HEADER	0x01
#define QFILE_REC_CONTENT	0x10
#define QFILE_REC_MAIL		0x20
#define QFILE_REC_CLIENT	0x21
#define QFILE_REC_PREPEND	0x22	/* version 3, optional */
#define QFILE_REC_RCPT		0x30
#define QFILE_REC_STATE		0x31
#define QFILE_REC_END		0x7f

#define QFILE_REC_HDRLEN	5	/* type + length */
#define QFILE_REC_CRCLEN	4
#define QFILE_REC_OVERHEAD	(QFILE_REC_HDRLEN + QFILE_REC_CRCLEN)

#define QFILE_CONTENT_MAX	65536		/* payload of one CONTENT */
#define QFILE_RECORD_MAX	(1024 * 1024)	/* payload of other records */
#define QFILE_STR_NULL		0xffffffffU	/* string length: absent */

/*
 * STATE payload. Version 2 (written): index, status, attempts,
 * next_attempt, last_reply[1024], flags, last_attempt, remote_mta[256].
 * Version 1 (read and updated in place): the same first four fields and
 * last_reply[256], nothing after.
 */
#define QFILE_REPLY_MAX		1024		/* last_reply field (v2) */
#define QFILE_REMOTE_MAX	256		/* remote_mta field (v2) */
#define QFILE_STATE_LEN		(4 + 4 + 4 + 8 + QFILE_REPLY_MAX + 4 + 8 + \
				 QFILE_REMOTE_MAX)
#define QFILE_STATE_RECLEN	(QFILE_REC_OVERHEAD + QFILE_STATE_LEN)
#define QFILE_REPLY_MAX_V1	256
#define QFILE_STATE_LEN_V1	(4 + 4 + 4 + 8 + QFILE_REPLY_MAX_V1)
#define QFILE_STATE_RECLEN_V1	(QFILE_REC_OVERHEAD + QFILE_STATE_LEN_V1)
#define QFILE_END_LEN		(8 + 8 + 8 + 4)
#define QFILE_END_RECLEN	(QFILE_REC_OVERHEAD + QFILE_END_LEN)

/* What the parser learnt besides the envelope. */
struct qfile_info {
	uint32_t version;
	uint64_t created;		/* usec since the epoch */
	char id[QUEUE_ID_MAX];		/* as written in HEADER */
	uint64_t content_offset;	/* first byte after HEADER */
	uint64_t content_size;		/* payload bytes of all CONTENT */
	uint64_t prepend_size;		/* octets of PREPEND (version 3) */
	uint64_t envelope_offset;	/* the MAIL record */
	uint64_t state_offset;		/* first STATE record */
	uint32_t nrcpts;
	uint64_t file_size;
	uint32_t torn_states;		/* STATE records read as PENDING */
};

#define QFILE_VERIFY_CONTENT	0x01	/* read and check every CONTENT */

/* CRC-32 (IEEE 802.3, reflected, as zlib): crc32_update(0, ...) starts. */
uint32_t qfile_crc32(uint32_t crc, const void *data, size_t len);

/*
 * Encode a whole record (header, payload, CRC) at the end of b. Returns 0
 * or -1 with errno EMSGSIZE.
 */
int qfile_record_append(struct buf *b, uint8_t type, const void *payload,
    size_t len);

/*
 * Fill the 5-byte header of a record whose payload already sits in
 * rec[5..5+len) and append its CRC at rec[5+len]; rec must have room.
 */
void qfile_record_seal(unsigned char *rec, uint8_t type, size_t len);

/* The HEADER record for a new file. */
int qfile_encode_header(struct buf *b, const char *id, uint64_t created);

/*
 * The envelope tail: MAIL, CLIENT, RCPT x n, STATE x n and END.
 * tail_offset is the file offset where the tail will be written;
 * content_size the number of content bytes before it. Returns 0, or -1
 * with errno EINVAL (nothing appended) if a mandatory string is NULL
 * (sender, client_addr, helo, proto, a recipient's orig or addr: the
 * parser rejects such a file as corrupt), or EMSGSIZE.
 */
int qfile_encode_tail(struct buf *b, const struct envelope *env,
    uint64_t tail_offset, uint64_t content_size);

/* One STATE record (QFILE_STATE_RECLEN bytes) for recipient index i. */
void qfile_encode_state(unsigned char *rec, uint32_t index,
    const struct envelope_rcpt *r);

/*
 * The same in the layout of a file of the given version (1 or 2), for
 * in-place updates of files written by an older Petrel; the record is
 * qfile_state_reclen(version) bytes.
 */
void qfile_encode_state_version(unsigned char *rec, uint32_t version,
    uint32_t index, const struct envelope_rcpt *r);
size_t qfile_state_reclen(uint32_t version);

/*
 * Parse and check a whole queue file from fd (read with pread; the file
 * offset is not used). With QFILE_VERIFY_CONTENT every CONTENT record is
 * read and its CRC checked; without, CONTENT payloads are skipped.
 * env (initialised by the caller; envelope_free()d on failure) receives
 * the envelope with recipient states. A STATE record whose CRC fails is a
 * torn in-place update and reads as PENDING (counted in torn_states).
 * Returns 0; or -1 with errno EBADMSG and *error_r naming what is wrong
 * (the file is corrupt), or -1 with another errno for I/O errors
 * (*error_r "read error"). A file is corrupt when it breaks the grammar,
 * a CRC fails, a mandatory string is absent, or it has more RCPT records
 * than the rest of the file has room for STATE records (rejected before
 * they are all read: memory stays bounded by the file size).
 */
int qfile_parse(int fd, int flags, struct envelope *env,
    struct qfile_info *info, const char **error_r);

/*
 * Stream the CONTENT records of fd to cb in order, checking each CRC and
 * that their total equals info->content_size. Returns 0, cb's non-zero
 * return, or -1 with errno (EBADMSG on format errors).
 */
int qfile_read_content(int fd, const struct qfile_info *info,
    int (*cb)(void *, const char *, size_t), void *arg);

/*
 * The same as an iterator: each call gives the next CONTENT payload
 * (valid until the next call). Returns 1, 0 at the end (the total is
 * checked there), or -1 with errno (EBADMSG on format errors). fd stays
 * the caller's.
 */
struct qfile_content;
struct qfile_content *qfile_content_open(int fd,
    const struct qfile_info *info);
int qfile_content_next(struct qfile_content *it, const char **data,
    size_t *len);
void qfile_content_close(struct qfile_content *it);

#endif
