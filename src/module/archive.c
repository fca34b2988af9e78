/*
 * archive.c - split a static archive ("!<arch>\n") into its object members.
 *
 * Format (System V / GNU, with the BSD long-name extension): a magic string,
 * then members, each a 60-byte text header followed by the data, padded to
 * an even offset.  Special members: "/" and "/SYM64/" are the symbol index
 * (big-endian count, member header offsets of 4 or 8 bytes, then as many
 * NUL-terminated names), "//" holds long names referred to as "/123".  BSD
 * names "#1/N" put N name bytes before the data; a BSD index ("__.SYMDEF")
 * is not read: such archives are searched through their members' symbols.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "archive.h"

#define AR_MAGIC "!<arch>\n"
#define AR_THIN_MAGIC "!<thin>\n"
#define AR_MAGIC_LEN 8

struct ar_header {
	char name[16], date[12], uid[6], gid[6], mode[8], size[10], fmag[2];
};

int mod_is_archive(const uint8_t *image, size_t size)
{
	return size >= AR_MAGIC_LEN && (memcmp(image, AR_MAGIC, AR_MAGIC_LEN) == 0 ||
					 memcmp(image, AR_THIN_MAGIC, AR_MAGIC_LEN) == 0);
}

/* Parse a decimal field padded with spaces; -1 when not a number. */
static int64_t parse_decimal(const char *field, size_t len)
{
	int64_t value = 0;
	size_t i = 0;

	while (i < len && field[i] == ' ')
		i++;
	if (i == len || field[i] < '0' || field[i] > '9')
		return -1;
	for (; i < len && field[i] >= '0' && field[i] <= '9'; i++) {
		if (value > (INT64_MAX - 9) / 10)
			return -1;
		value = value * 10 + (field[i] - '0');
	}
	for (; i < len; i++)
		if (field[i] != ' ')
			return -1;
	return value;
}

void mod_member_name(char *dst, const struct mod_member *m)
{
	for (size_t i = 0; i < m->name_len; i++)
		dst[i] = (m->name[i] >= 0x20 && m->name[i] < 0x7f) ? m->name[i] : '?';
	dst[m->name_len] = '\0';
}

static void set_name(struct mod_member *m, const char *name, size_t len)
{
	m->name = name;
	m->name_len = len < MOD_MEMBER_NAME_MAX ? len : MOD_MEMBER_NAME_MAX;
}

/* A GNU long name "/123": the name at offset 123 of "//", ended by "/\n". */
static int long_name(const uint8_t *table, size_t table_size, const char *field,
		     struct mod_member *m, const char *archive)
{
	int64_t offset = parse_decimal(field + 1, 15);
	if (!table || offset < 0 || (uint64_t)offset >= table_size)
		return mod_error(ENOEXEC, "%s: malformed archive: bad long member name", archive);
	const char *start = (const char *)table + offset;
	size_t len = 0;
	while ((size_t)offset + len < table_size && start[len] != '/' && start[len] != '\n')
		len++;
	set_name(m, start, len);
	return 0;
}

/* h: the header in the archive's image, which the name then points into. */
static void short_name(const struct ar_header *h, struct mod_member *m)
{
	size_t len = 0;
	while (len < sizeof(h->name) && h->name[len] != '/' && h->name[len] != ' ')
		len++;
	set_name(m, h->name, len);
}

static int add_member(struct mod_member **members, size_t *count, size_t *cap,
		      const struct mod_member *m)
{
	struct mod_member *n = mod_grow(*members, *count, cap, sizeof(*n), 8);
	if (!n)
		return -ENOMEM;
	*members = n;
	(*members)[(*count)++] = *m;
	return 0;
}

/* Fill m from the header at image + pos; *data_len is the data size. */
static int parse_member(const uint8_t *image, size_t size, size_t pos, const char *archive,
			const uint8_t *names, size_t names_size, struct mod_member *m,
			uint64_t *data_len, int *special)
{
	struct ar_header h;

	if (!mod_range_ok(pos, sizeof(h), size))
		return mod_error(ENOEXEC, "%s: malformed archive: truncated member header", archive);
	memcpy(&h, image + pos, sizeof(h));
	int64_t len = parse_decimal(h.size, sizeof(h.size));
	if (h.fmag[0] != '`' || h.fmag[1] != '\n' || len < 0)
		return mod_error(ENOEXEC, "%s: malformed archive: bad member header at offset %zu",
				 archive, pos);
	uint64_t start = pos + sizeof(h);
	if (!mod_range_ok(start, (uint64_t)len, size))
		return mod_error(ENOEXEC, "%s: malformed archive: member at offset %zu runs past "
				 "the end", archive, pos);
	*data_len = (uint64_t)len;
	m->header_offset = pos;
	m->data = image + start;
	m->size = (size_t)len;
	*special = 0;
	if (memcmp(h.name, "/ ", 2) == 0 || memcmp(h.name, "/SYM64/", 7) == 0 ||
	    memcmp(h.name, "__.SYMDEF", 9) == 0 || memcmp(h.name, "// ", 3) == 0) {
		*special = h.name[1] == '/' ? 2 : 1;
		return 0;
	}
	if (h.name[0] == '/')
		return long_name(names, names_size, h.name, m, archive);
	if (memcmp(h.name, "#1/", 3) == 0) {
		int64_t nlen = parse_decimal(h.name + 3, sizeof(h.name) - 3);
		if (nlen < 0 || (uint64_t)nlen > m->size)
			return mod_error(ENOEXEC, "%s: malformed archive: bad BSD member name", archive);
		set_name(m, (const char *)m->data, (size_t)nlen);
		m->data += nlen;
		m->size -= (size_t)nlen;
		return 0;
	}
	short_name((const struct ar_header *)(image + pos), m);
	return 0;
}

int mod_archive_members(const uint8_t *image, size_t size, const char *archive,
			struct mod_member **members, size_t *count)
{
	const uint8_t *names = NULL;
	size_t names_size = 0, cap = 0, pos = AR_MAGIC_LEN;
	int err = 0;

	*members = NULL;
	*count = 0;
	if (size >= AR_MAGIC_LEN && memcmp(image, AR_THIN_MAGIC, AR_MAGIC_LEN) == 0)
		return mod_error(ENOTSUP, "%s: thin archives are not supported", archive);
	while (pos < size && !err) {
		struct mod_member m;
		uint64_t len = 0;
		int special;

		memset(&m, 0, sizeof(m));
		err = parse_member(image, size, pos, archive, names, names_size, &m, &len, &special);
		if (err)
			break;
		if (special == 2) {
			names = m.data;
			names_size = m.size;
		} else if (!special) {
			if (*count >= MOD_MAX_MEMBERS)
				err = mod_error(ENOEXEC, "%s: too many archive members", archive);
			else if (add_member(members, count, &cap, &m))
				err = mod_error(ENOMEM, "%s: out of memory", archive);
		}
		pos += sizeof(struct ar_header) + len;
		pos += pos & 1;
	}
	if (!err && *count == 0)
		err = mod_error(ENOEXEC, "%s: archive holds no object", archive);
	if (err) {
		free(*members);
		*members = NULL;
		*count = 0;
	}
	return err;
}

static uint64_t read_big_endian(const uint8_t *p, unsigned width)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < width; i++)
		v = v << 8 | p[i];
	return v;
}

/* Entries of an index member of data[0..size) with width-byte fields. */
static int parse_index(const uint8_t *data, size_t size, unsigned width, const char *archive,
		       struct mod_archive_symbol **symbols, size_t *count)
{
	if (size < width)
		return mod_error(ENOEXEC, "%s: malformed archive: truncated symbol index", archive);
	uint64_t n = read_big_endian(data, width);
	if (n > (size - width) / width)
		return mod_error(ENOEXEC, "%s: malformed archive: symbol index count %llu too large",
				 archive, (unsigned long long)n);
	const uint8_t *names = data + width + n * width;
	size_t names_size = size - width - n * width, at = 0;
	struct mod_archive_symbol *out = calloc(n ? n : 1, sizeof(*out));
	if (!out)
		return mod_error(ENOMEM, "%s: out of memory", archive);
	for (uint64_t i = 0; i < n; i++) {
		const uint8_t *end = at < names_size ? memchr(names + at, '\0', names_size - at) : NULL;
		if (!end) {
			free(out);
			return mod_error(ENOEXEC, "%s: malformed archive: symbol index names run "
					 "past its end", archive);
		}
		out[i].name = (const char *)names + at;
		out[i].header_offset = (size_t)read_big_endian(data + width + i * width, width);
		at = (size_t)(end - names) + 1;
	}
	*symbols = out;
	*count = (size_t)n;
	return 0;
}

int mod_archive_index(const uint8_t *image, size_t size, const char *archive,
		      struct mod_archive_symbol **symbols, size_t *count)
{
	struct mod_member m;
	uint64_t len;
	int special;

	*symbols = NULL;
	*count = 0;
	if (size <= AR_MAGIC_LEN)
		return 0;
	memset(&m, 0, sizeof(m));
	int err = parse_member(image, size, AR_MAGIC_LEN, archive, NULL, 0, &m, &len, &special);
	if (err || special != 1)
		return 0;   /* no index: mod_archive_members() reports a bad header */
	const char *header = (const char *)image + AR_MAGIC_LEN;
	if (memcmp(header, "/ ", 2) == 0)
		return parse_index(m.data, m.size, 4, archive, symbols, count);
	if (memcmp(header, "/SYM64/", 7) == 0)
		return parse_index(m.data, m.size, 8, archive, symbols, count);
	return 0;
}
